/*
 * backend_openai.c — the OpenAI-compatible HTTP inference backend (ss_backends.h).
 *
 * Every inference request becomes one HTTP POST:
 *   CHOOSE    /v1/completions  max_tokens 1, temperature 0, logprobs N, echo false; the
 *             probability of each choice is the probability of its first token among
 *             the top-N logprobs of the first generated position (see choose_probs);
 *   SCORE     the same, over the integers score_min..score_max; the expected value;
 *   GENERATE  /v1/completions  prompt, max_tokens, temperature, seed, stop;
 *   EMBED     /v1/embeddings   input.
 * A batch runs on one curl multi handle with at most max_concurrency transfers at once;
 * connection errors, timeouts, HTTP 5xx and 429 are retried with exponential backoff
 * (a Retry-After header wins when larger). Owns its curl handles; responses are read
 * with src/ss_json.h.
 */
#include "ss_backends.h"
#include "ss_json.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- small lookups over ss_json (src/ss_json.h) ---- */

static const ss_json_t *jidx(const ss_json_t *v, size_t i)
{
    return v && v->t == SS_JSON_ARRAY && i < v->u.arr.n ? &v->u.arr.items[i] : NULL;
}

static size_t jlen(const ss_json_t *v)
{
    return v && v->t == SS_JSON_ARRAY ? v->u.arr.n : 0;
}

/* 1 and *out set if v is a number. */
static int jnum(const ss_json_t *v, double *out)
{
    if (!v || (v->t != SS_JSON_INT && v->t != SS_JSON_REAL)) return 0;
    *out = v->t == SS_JSON_INT ? (double)v->u.i : v->u.r;
    return 1;
}

/* ======================= the backend ======================= */

typedef struct oai {
    ss_openai_opts_t o;     /* strings below are owned copies */
    char *url, *model, *api_key;
    char *completions_url, *embeddings_url;
    char *models_url;
    CURLM *multi;
    pthread_mutex_t mu;     /* one batch at a time on the multi handle */
    int ext;                /* semstream extensions: 1 on, 0 off, -1 not known yet (auto) */
    int canceled;           /* set by oai_cancel (atomic): runs end at once */
} oai_t;

/* One HTTP request's life: it carries n inference requests (reqs[idx[k]] -> res[idx[k]]),
 * sent as a JSON array of prompts/inputs when n > 1. */
typedef struct job {
    const ss_infer_req_t *reqs; /* the batch (borrowed) */
    ss_infer_res_t *res;
    int *idx;               /* members, in array order */
    int n;
    const char *url;        /* completions or embeddings */
    const char *path;       /* for messages: "/v1/completions" */
    char *body;             /* request JSON */
    ss_buf_t resp;
    CURL *h;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    int attempts;
    int64_t not_before_ns;  /* backoff: do not start before */
    int done;
} job_t;

static int64_t ms_ns(int64_t ms) { return ms * 1000000LL; }

static char *endpoint(const char *url, const char *what)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') n--;
    int has_v1 = n >= 3 && !strncmp(url + n - 3, "/v1", 3);
    return ss_sprintf("%.*s%s/%s", (int)n, url, has_v1 ? "" : "/v1", what);
}

static void put_prompts(const job_t *j, ss_buf_t *out)
{
    if (j->n > 1) ss_buf_putc(out, '[');
    for (int k = 0; k < j->n; k++) {
        const char *p = j->reqs[j->idx[k]].prompt ? j->reqs[j->idx[k]].prompt : "";
        if (k) ss_buf_putc(out, ',');
        ss_json_put_str_utf8(out, p, strlen(p));
    }
    if (j->n > 1) ss_buf_putc(out, ']');
}

/* The request JSON; every member shares the parameters of the first (see compatible). */
static int build_body(oai_t *b, const job_t *j, ss_buf_t *out)
{
    const ss_infer_req_t *r = &j->reqs[j->idx[0]];
    ss_buf_puts(out, "{\"model\":");
    ss_json_put_str_utf8(out, b->model, strlen(b->model));
    ss_buf_puts(out, r->kind == SS_INFER_EMBED ? ",\"input\":" : ",\"prompt\":");
    put_prompts(j, out);
    if (r->kind == SS_INFER_EMBED) return ss_buf_putc(out, '}');
    if (r->kind == SS_INFER_GENERATE) {
        ss_buf_printf(out, ",\"max_tokens\":%d,\"temperature\":%.9g", SS_MAX(r->max_tokens, 1),
                      (double)r->temperature);
        if (r->temperature > 0) ss_buf_printf(out, ",\"seed\":%llu", (unsigned long long)(r->seed & 0x7fffffffffffffffULL));
        if (r->top_logprobs > 0) ss_buf_printf(out, ",\"logprobs\":%d", r->top_logprobs);
        if (r->stop) {
            ss_buf_puts(out, ",\"stop\":[");
            ss_json_put_str_utf8(out, r->stop, strlen(r->stop));
            ss_buf_putc(out, ']');
        }
    } else {
        ss_buf_printf(out, ",\"max_tokens\":1,\"temperature\":0,\"logprobs\":%d,\"echo\":false",
                      b->o.top_logprobs);
        if (b->ext > 0 && r->kind == SS_INFER_CHOOSE) { /* a semstream worker answers exactly */
            ss_buf_puts(out, ",\"semstream_choices\":[");
            for (int i = 0; i < r->nchoices; i++) {
                const char *c = r->choices[i] ? r->choices[i] : "";
                if (i) ss_buf_putc(out, ',');
                ss_json_put_str_utf8(out, c, strlen(c));
            }
            ss_buf_putc(out, ']');
        } else if (b->ext > 0) {
            ss_buf_printf(out, ",\"semstream_score\":[%d,%d]", r->score_min, r->score_max);
        }
    }
    return ss_buf_putc(out, '}');
}

static int same_choices(const ss_infer_req_t *a, const ss_infer_req_t *b)
{
    if (a->nchoices != b->nchoices) return 0;
    for (int i = 0; i < a->nchoices; i++)
        if (strcmp(a->choices[i] ? a->choices[i] : "", b->choices[i] ? b->choices[i] : "")) return 0;
    return 1;
}

/* 1 if b can share one HTTP request with a (same kind and same body parameters). */
static int compatible(const oai_t *o, const ss_infer_req_t *a, const ss_infer_req_t *b)
{
    if (a->kind != b->kind) return 0;
    if (a->kind == SS_INFER_EMBED) return 1;
    /* with the extensions, choices and score range travel once per HTTP request */
    if (a->kind == SS_INFER_CHOOSE) return o->ext <= 0 || same_choices(a, b);
    if (a->kind == SS_INFER_SCORE)
        return o->ext <= 0 || (a->score_min == b->score_min && a->score_max == b->score_max);
    return a->max_tokens == b->max_tokens && a->temperature == b->temperature &&
           (a->temperature <= 0 || a->seed == b->seed) && a->top_logprobs == b->top_logprobs &&
           (a->stop ? b->stop && !strcmp(a->stop, b->stop) : !b->stop);
}

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    job_t *j = ud;
    return ss_buf_append(&j->resp, p, sz * n) == SS_OK ? sz * n : 0;
}

static int job_start(oai_t *b, job_t *j)
{
    ss_buf_reset(&j->resp);
    j->errbuf[0] = 0;
    j->h = curl_easy_init();
    if (!j->h) return SS_ERR_NOMEM;
    curl_easy_setopt(j->h, CURLOPT_URL, j->url);
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
    if (curl_multi_add_handle(b->multi, j->h) != CURLM_OK) {
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

/* top_logprobs of the first generated position: an object {token: logprob}
 * (legacy completions), or an array [{token, logprob}] (some servers). */
typedef struct toplp {
    int n;
    const char *tok[64];
    double lp[64];
} toplp_t;

static int read_top(const ss_json_t *choice, toplp_t *t)
{
    const ss_json_t *top = jidx(ss_json_get(ss_json_get(choice, "logprobs"), "top_logprobs"), 0);
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

/* Logprob of choice c's first token: the longest returned token that is a prefix of c
 * (exact first, then ignoring leading whitespace and ASCII case). NAN if none. */
static double first_token_lp(const toplp_t *t, const char *c)
{
    for (int pass = 0; pass < 2; pass++) {
        int best = -1;
        size_t bestlen = 0;
        const char *cc = pass ? skip_space(c) : c;
        for (int i = 0; i < t->n; i++) {
            const char *tk = pass ? skip_space(t->tok[i]) : t->tok[i];
            size_t l = strlen(tk);
            if (l == 0 || l > strlen(cc) || l <= bestlen) continue;
            if (pass ? !strncasecmp(tk, cc, l) : !strncmp(tk, cc, l)) {
                best = i;
                bestlen = l;
            }
        }
        if (best >= 0) return t->lp[best];
    }
    return NAN;
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
    const ss_json_t *tl = ss_json_get(ss_json_get(c0, "logprobs"), "token_logprobs");
    int n = (int)jlen(tl);
    if (res->gen_tokens <= 0) res->gen_tokens = n;
    double x;
    if (res->gen_tokens > 0 && (res->token_logprobs = calloc((size_t)res->gen_tokens, sizeof(float))))
        for (int i = 0; i < SS_MIN(n, res->gen_tokens); i++)
            if (jnum(jidx(tl, (size_t)i), &x)) res->token_logprobs[i] = (float)x;
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

/* Fills member k from the parsed response; on failure fails that member only. */
static void parse_member(oai_t *b, job_t *j, const ss_json_t *doc, int k)
{
    char sn[256];
    const ss_infer_req_t *r = &j->reqs[j->idx[k]];
    ss_infer_res_t *res = &j->res[j->idx[k]];
    const char *missing = NULL;
    const ss_json_t *el = nth(ss_json_get(doc, r->kind == SS_INFER_EMBED ? "data" : "choices"), k);
    if (r->kind == SS_INFER_EMBED) {
        const ss_json_t *e = ss_json_get(el, "embedding");
        size_t n = jlen(e);
        if (n == 0) missing = "embedding";
        else if ((res->emb = malloc(n * sizeof(float)))) {
            res->dim = (int)n;
            for (size_t i = 0; i < n && !missing; i++) {
                double x = 0;
                if (!jnum(jidx(e, i), &x)) missing = "numeric embedding";
                res->emb[i] = (float)x;
            }
        }
    } else {
        const char *txt = ss_json_str(ss_json_get(el, "text"));
        const ss_json_t *sp = ss_json_get(el, "semstream_probs");
        double sv;
        toplp_t t;
        if (!el) missing = "";
        else if (r->kind == SS_INFER_CHOOSE && (int)jlen(sp) == r->nchoices && r->nchoices > 0) {
            res->nprobs = r->nchoices; /* exact, from a semstream worker */
            res->probs = calloc((size_t)r->nchoices, sizeof(float));
            for (int i = 0; i < r->nchoices && res->probs; i++) {
                double x = 0;
                jnum(jidx(sp, (size_t)i), &x);
                res->probs[i] = (float)x;
            }
        } else if (r->kind == SS_INFER_SCORE && jnum(ss_json_get(el, "semstream_score_value"), &sv)) {
            res->score = sv;
        }
        else if (r->kind == SS_INFER_GENERATE) {
            if (!txt) missing = ".text";
            else res->text = ss_strdup(txt);
            if (!missing && r->top_logprobs > 0 && gen_logprobs(doc, el, j->n, res) != 0)
                missing = ".logprobs.top_logprobs[0]";
        } else if (read_top(el, &t) != 0) {
            missing = ".logprobs.top_logprobs[0]";
        } else if (r->kind == SS_INFER_CHOOSE) {
            res->nprobs = r->nchoices;
            res->probs = calloc((size_t)SS_MAX(r->nchoices, 1), sizeof(float));
            if (res->probs) choose_probs(&t, r, res->probs);
        } else if (score_value(&t, r, &res->score) != 0) {
            member_fail(b, j, k, SS_ERR_MODEL, "no integer %d..%d among the top %d tokens from %s: %s",
                        r->score_min, r->score_max, t.n, j->path, snippet(j, sn, sizeof sn));
            return;
        }
    }
    if (missing) {
        member_fail(b, j, k, SS_ERR_HTTP, "response from %s lacks %s[%d]%s: %s", j->path,
                    r->kind == SS_INFER_EMBED ? "data" : "choices", k,
                    r->kind == SS_INFER_EMBED ? (*missing ? ".embedding" : "") : missing, snippet(j, sn, sizeof sn));
        return;
    }
    if (!res->token_logprobs) usage(doc, el, j->n, res);
    res->status = SS_OK;
}

/* Fills the members' results from a 2xx body (each failing alone when its part is missing). */
static void parse_ok(oai_t *b, job_t *j)
{
    char sn[256], perr[SS_ERRSZ];
    size_t at = 0;
    ss_json_doc_t *jd = NULL;
    if (ss_json_parse(j->resp.data ? j->resp.data : "", j->resp.len, 0, &jd, &at, perr, sizeof perr) != SS_OK) {
        job_fail(b, j, SS_ERR_HTTP, "bad JSON from %s at byte %zu: %s", j->path, at, snippet(j, sn, sizeof sn));
        return;
    }
    for (int k = 0; k < j->n; k++) parse_member(b, j, ss_json_root(jd), k);
    ss_json_free(jd);
    j->done = 1;
}

static int retryable(CURLcode cc, long http)
{
    if (cc != CURLE_OK)
        return cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_GOT_NOTHING ||
               cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR || cc == CURLE_PARTIAL_FILE ||
               cc == CURLE_COULDNT_RESOLVE_HOST;
    return http == 429 || http >= 500;
}

static void transfer_done(oai_t *b, job_t *j, CURLcode cc)
{
    long http = 0;
    curl_off_t retry_after = -1;
    char sn[256];
    curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_getinfo(j->h, CURLINFO_RETRY_AFTER, &retry_after);
    curl_multi_remove_handle(b->multi, j->h);
    curl_easy_cleanup(j->h);
    j->h = NULL;
    if (cc == CURLE_OK && http >= 200 && http < 300) {
        parse_ok(b, j);
        return;
    }
    if (retryable(cc, http) && j->attempts <= b->o.max_retries) {
        int64_t delay = (int64_t)b->o.backoff_ms << SS_MIN(j->attempts - 1, 20);
        if (retry_after > 0) delay = SS_MAX(delay, (int64_t)retry_after * 1000);
        delay = SS_MIN(delay, (int64_t)b->o.max_backoff_ms);
        ss_log(SS_LOG_INFO, "openai", "%s: attempt %d failed (%s, HTTP %ld); retrying in %lld ms", j->path,
               j->attempts, curl_easy_strerror(cc), http, (long long)delay);
        j->not_before_ns = ss_now_ns() + ms_ns(delay);
        return;
    }
    const char *tries = j->attempts > 1 ? " after retries" : "";
    if (cc == CURLE_COULDNT_CONNECT)
        job_fail(b, j, SS_ERR_HTTP, "connection refused (%s)%s", j->errbuf, tries);
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        job_fail(b, j, SS_ERR_TIMEOUT, "timed out after %d ms on %s%s", b->o.timeout_ms, j->path, tries);
    else if (cc != CURLE_OK)
        job_fail(b, j, SS_ERR_HTTP, "%s on %s (%s)%s", curl_easy_strerror(cc), j->path, j->errbuf, tries);
    else
        job_fail(b, j, http == 429 ? SS_ERR_BUSY : SS_ERR_HTTP, "HTTP %ld from %s%s: %s", http, j->path, tries,
                 snippet(j, sn, sizeof sn));
}

/* Runs all jobs to completion with at most max_concurrency transfers at once. */
static void run_jobs(oai_t *b, job_t *jobs, int n)
{
    int left = n, active = 0;
    while (left > 0) {
        if (__atomic_load_n(&b->canceled, __ATOMIC_ACQUIRE)) { /* stopping: give up what is left */
            for (int i = 0; i < n; i++) {
                job_t *j = &jobs[i];
                if (j->done) continue;
                if (j->h) {
                    curl_multi_remove_handle(b->multi, j->h);
                    curl_easy_cleanup(j->h);
                    j->h = NULL;
                }
                job_fail(b, j, SS_ERR_CANCELED, "canceled: the engine is stopping");
            }
            break;
        }
        int64_t now = ss_now_ns(), wait_ms = 100;
        for (int i = 0; i < n && active < b->o.max_concurrency; i++) {
            job_t *j = &jobs[i];
            if (j->done || j->h) continue;
            if (j->not_before_ns > now) {
                wait_ms = SS_MIN(wait_ms, (j->not_before_ns - now) / 1000000 + 1);
                continue;
            }
            if (job_start(b, j) != SS_OK) {
                job_fail(b, j, SS_ERR_HTTP, "cannot start a transfer to %s", j->url);
                left--;
                continue;
            }
            active++;
        }
        int running = 0;
        curl_multi_perform(b->multi, &running);
        CURLMsg *m;
        int q;
        while ((m = curl_multi_info_read(b->multi, &q))) {
            if (m->msg != CURLMSG_DONE) continue;
            job_t *j = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            CURLcode cc = m->data.result;
            active--;
            transfer_done(b, j, cc);
            if (j->done) left--;
        }
        if (left > 0) curl_multi_poll(b->multi, NULL, 0, (int)(active ? SS_MIN(wait_ms, 50) : wait_ms), NULL);
    }
}

static size_t on_probe(char *p, size_t sz, size_t n, void *ud)
{
    return ss_buf_append(ud, p, sz * n) == SS_OK ? sz * n : 0;
}

/* semstream_ext auto: asks GET /v1/models once whether the server is a `semstream worker`
 * (owned_by "semstream"). A transport failure leaves it unknown (asked again next batch). */
static void probe_ext(oai_t *b)
{
    ss_buf_t body = SS_BUF_INIT;
    CURL *h = curl_easy_init();
    if (!h) return;
    curl_easy_setopt(h, CURLOPT_URL, b->models_url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_probe);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)SS_MIN(b->o.timeout_ms, 5000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *hdrs = NULL;
    char *auth = b->api_key ? ss_sprintf("Authorization: Bearer %s", b->api_key) : NULL;
    if (auth) hdrs = curl_slist_append(NULL, auth);
    if (hdrs) curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    long http = 0;
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
        ss_json_doc_t *jd = NULL;
        char perr[SS_ERRSZ];
        b->ext = 0;
        if (http == 200 && ss_json_parse(body.data ? body.data : "", body.len, 0, &jd, NULL, perr, sizeof perr) == SS_OK) {
            const ss_json_t *data = ss_json_get(ss_json_root(jd), "data");
            for (size_t i = 0; i < jlen(data); i++) {
                const char *own = ss_json_str(ss_json_get(jidx(data, i), "owned_by"));
                if (own && !strcmp(own, "semstream")) b->ext = 1;
            }
            ss_json_free(jd);
        }
        ss_log(SS_LOG_INFO, "openai", "%s: semstream extensions %s", b->url, b->ext ? "on" : "off");
    }
    curl_slist_free_all(hdrs);
    free(auth);
    curl_easy_cleanup(h);
    ss_buf_free(&body);
}

/* Groups compatible requests (up to embed_batch inputs / prompt_batch prompts per HTTP
 * request) into jobs; returns the number of jobs. idx must hold n ints. */
static int make_jobs(oai_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, job_t *jobs, int *idx,
                     struct curl_slist *hdrs)
{
    char *used = calloc((size_t)SS_MAX(n, 1), 1);
    int nj = 0, at = 0;
    for (int i = 0; i < n && used; i++) {
        if (used[i]) continue;
        int emb = reqs[i].kind == SS_INFER_EMBED, cap = emb ? b->o.embed_batch : b->o.prompt_batch;
        job_t *j = &jobs[nj++];
        *j = (job_t){.reqs = reqs, .res = res, .idx = idx + at, .hdrs = hdrs,
                     .url = emb ? b->embeddings_url : b->completions_url,
                     .path = emb ? "/v1/embeddings" : "/v1/completions"};
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
        ss_buf_t body = SS_BUF_INIT;
        build_body(b, j, &body);
        j->body = ss_buf_take(&body);
    }
    if (!used) return -1;
    free(used);
    return nj;
}

static int oai_run(ss_infer_backend_t *be, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res,
                   char *err, size_t errsz)
{
    oai_t *b = be->impl;
    job_t *jobs = calloc((size_t)SS_MAX(n, 1), sizeof *jobs);
    int *idx = calloc((size_t)SS_MAX(n, 1), sizeof *idx), nj = -1;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    char *auth = b->api_key ? ss_sprintf("Authorization: Bearer %s", b->api_key) : NULL;
    if (auth) hdrs = curl_slist_append(hdrs, auth);
    free(auth);
    pthread_mutex_lock(&b->mu);
    if (b->ext < 0) probe_ext(b);
    int ext = b->ext;
    if (b->ext < 0) b->ext = 0; /* unknown: plain protocol for this batch */
    if (jobs && idx && hdrs) nj = make_jobs(b, reqs, n, res, jobs, idx, hdrs);
    b->ext = ext;
    if (nj < 0) {
        pthread_mutex_unlock(&b->mu);
        free(jobs);
        free(idx);
        curl_slist_free_all(hdrs);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "openai backend %s: out of memory", b->url);
    }
    int pending = 0;
    for (int i = 0; i < nj; i++) pending += !jobs[i].done;
    if (pending) run_jobs(b, jobs, nj);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < nj; i++) {
        free(jobs[i].body);
        ss_buf_free(&jobs[i].resp);
    }
    free(jobs);
    free(idx);
    curl_slist_free_all(hdrs);
    return SS_OK;
}

static void oai_destroy(ss_infer_backend_t *be)
{
    if (!be) return;
    oai_t *b = be->impl;
    if (b) {
        if (b->multi) curl_multi_cleanup(b->multi);
        pthread_mutex_destroy(&b->mu);
        free(b->url);
        free(b->model);
        free(b->api_key);
        free(b->completions_url);
        free(b->embeddings_url);
        free(b->models_url);
        free(b);
    }
    free(be->model_id);
    free(be);
}

static void oai_cancel(ss_infer_backend_t *be)
{
    oai_t *b = be->impl;
    __atomic_store_n(&b->canceled, 1, __ATOMIC_RELEASE);
    curl_multi_wakeup(b->multi); /* out of a poll at once */
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

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
    b->o.top_logprobs = o->top_logprobs > 0 ? o->top_logprobs : 20;
    b->o.embed_batch = o->embed_batch > 0 ? o->embed_batch : 32;
    b->o.prompt_batch = o->prompt_batch > 0 ? o->prompt_batch : 1;
    b->url = ss_strdup(o->url);
    b->model = ss_strdup(o->model);
    b->api_key = o->api_key && *o->api_key ? ss_strdup(o->api_key) : NULL;
    b->completions_url = endpoint(o->url, "completions");
    b->embeddings_url = endpoint(o->url, "embeddings");
    b->models_url = endpoint(o->url, "models");
    b->ext = o->semstream_ext > 0 ? 1 : o->semstream_ext < 0 ? 0 : -1;
    b->multi = curl_multi_init();
    pthread_mutex_init(&b->mu, NULL);
    be->kind = "openai";
    be->model_id = ss_sprintf("openai:%s:%s", o->url, o->model);
    be->impl = b;
    be->run = oai_run;
    be->destroy = oai_destroy;
    be->cancel = oai_cancel;
    if (!b->multi || !be->model_id || !b->completions_url || !b->embeddings_url || !b->models_url) {
        oai_destroy(be);
        ss_seterr(err, errsz, SS_ERR_NOMEM, "openai backend: cannot initialise libcurl");
        return NULL;
    }
    curl_multi_setopt(b->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)b->o.max_concurrency);
    return be;
}

ss_infer_backend_t *ss_backend_openai_new(const char *url, const char *model, const char *api_key,
                                          int timeout_ms, int max_concurrency, char *err, size_t errsz)
{
    ss_openai_opts_t o = {.url = url, .model = model, .api_key = api_key, .timeout_ms = timeout_ms,
                          .max_concurrency = max_concurrency};
    return ss_backend_openai_open(&o, err, errsz);
}
