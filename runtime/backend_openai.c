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
 * (a Retry-After header wins when larger). Owns its curl handles and a minimal JSON
 * reader (below) for the responses.
 */
#include "ss_backends.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ======================= minimal JSON reader ======================= */

typedef enum { JNULL, JBOOL, JNUM, JSTR, JARR, JOBJ } jtype_t;

typedef struct jv {
    jtype_t t;
    double num;          /* JNUM, JBOOL */
    char *str;           /* JSTR: owned, NUL-terminated UTF-8 */
    int n;               /* JARR/JOBJ: number of children */
    struct jv **kids;    /* JARR/JOBJ: owned children */
    char **keys;         /* JOBJ: owned keys, parallel to kids */
} jv_t;

typedef struct jp {
    const char *s, *p, *end;
    int depth;
} jp_t;

static void jv_free(jv_t *v)
{
    if (!v) return;
    for (int i = 0; i < v->n; i++) {
        jv_free(v->kids[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->kids);
    free(v->keys);
    free(v->str);
    free(v);
}

static void jws(jp_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static void utf8_put(ss_buf_t *b, unsigned cp)
{
    char t[4];
    int n;
    if (cp < 0x80) { t[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { t[0] = (char)(0xC0 | (cp >> 6)); t[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12)); t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18)); t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); t[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    ss_buf_append(b, t, (size_t)n);
}

/* Parses a string literal at j->p (on '"'); returns malloc'd text or NULL. */
static char *jstr(jp_t *j)
{
    ss_buf_t b = SS_BUF_INIT;
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) goto bad;
        if (c != '\\') { ss_buf_putc(&b, c); continue; }
        if (j->p >= j->end) goto bad;
        c = *j->p++;
        switch (c) {
        case '"': case '\\': case '/': ss_buf_putc(&b, c); break;
        case 'b': ss_buf_putc(&b, '\b'); break;
        case 'f': ss_buf_putc(&b, '\f'); break;
        case 'n': ss_buf_putc(&b, '\n'); break;
        case 'r': ss_buf_putc(&b, '\r'); break;
        case 't': ss_buf_putc(&b, '\t'); break;
        case 'u': {
            unsigned cp, lo;
            if (j->end - j->p < 4 || hex4(j->p, &cp)) goto bad;
            j->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && j->end - j->p >= 6 && j->p[0] == '\\' &&
                j->p[1] == 'u' && !hex4(j->p + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                j->p += 6;
            }
            utf8_put(&b, cp);
            break;
        }
        default: goto bad;
        }
    }
    if (j->p >= j->end) goto bad;
    j->p++;
    ss_buf_putc(&b, 0); /* so an empty string is "" and not NULL */
    return ss_buf_take(&b);
bad:
    ss_buf_free(&b);
    return NULL;
}

static jv_t *jvalue(jp_t *j);

static int jadd(jv_t *v, jv_t *kid, char *key)
{
    jv_t **k = realloc(v->kids, (size_t)(v->n + 1) * sizeof *k);
    if (!k) return -1;
    v->kids = k;
    if (v->t == JOBJ) {
        char **ks = realloc(v->keys, (size_t)(v->n + 1) * sizeof *ks);
        if (!ks) return -1;
        v->keys = ks;
        ks[v->n] = key;
    }
    k[v->n++] = kid;
    return 0;
}

static jv_t *jcontainer(jp_t *j, jv_t *v)
{
    char close = v->t == JARR ? ']' : '}';
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == close) { j->p++; return v; }
    for (;;) {
        char *key = NULL;
        jws(j);
        if (v->t == JOBJ) {
            if (j->p >= j->end || *j->p != '"' || !(key = jstr(j))) goto bad;
            jws(j);
            if (j->p >= j->end || *j->p != ':') { free(key); goto bad; }
            j->p++;
        }
        jv_t *kid = jvalue(j);
        if (!kid || jadd(v, kid, key)) { free(key); jv_free(kid); goto bad; }
        jws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        if (j->p < j->end && *j->p == close) { j->p++; return v; }
        goto bad;
    }
bad:
    jv_free(v);
    return NULL;
}

static jv_t *jvalue(jp_t *j)
{
    jws(j);
    if (j->p >= j->end || j->depth > 64) return NULL;
    jv_t *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    char c = *j->p;
    if (c == '{' || c == '[') {
        v->t = c == '{' ? JOBJ : JARR;
        j->depth++;
        v = jcontainer(j, v);
        j->depth--;
        return v;
    }
    if (c == '"') {
        v->t = JSTR;
        if (!(v->str = jstr(j))) { free(v); return NULL; }
        return v;
    }
    static const struct { const char *w; jtype_t t; double n; } lits[] = {
        {"true", JBOOL, 1}, {"false", JBOOL, 0}, {"null", JNULL, 0}};
    for (size_t i = 0; i < SS_ARRAY_LEN(lits); i++) {
        size_t l = strlen(lits[i].w);
        if ((size_t)(j->end - j->p) >= l && !memcmp(j->p, lits[i].w, l)) {
            v->t = lits[i].t;
            v->num = lits[i].n;
            j->p += l;
            return v;
        }
    }
    char tmp[64], *e;
    size_t l = SS_MIN((size_t)(j->end - j->p), sizeof tmp - 1);
    memcpy(tmp, j->p, l);
    tmp[l] = 0;
    v->t = JNUM;
    v->num = strtod(tmp, &e);
    if (e == tmp || !(c == '-' || (c >= '0' && c <= '9'))) { free(v); return NULL; }
    j->p += e - tmp;
    return v;
}

/* Parses a whole document; on failure returns NULL and the byte offset in *at. */
static jv_t *json_parse(const char *s, size_t n, size_t *at)
{
    jp_t j = {s, s, s + n, 0};
    jv_t *v = jvalue(&j);
    if (v) {
        jws(&j);
        if (j.p != j.end) { jv_free(v); v = NULL; }
    }
    *at = (size_t)(j.p - s);
    return v;
}

static jv_t *jget(const jv_t *v, const char *key)
{
    if (!v || v->t != JOBJ) return NULL;
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key)) return v->kids[i];
    return NULL;
}

static jv_t *jidx(const jv_t *v, int i)
{
    return v && v->t == JARR && i >= 0 && i < v->n ? v->kids[i] : NULL;
}

/* ======================= the backend ======================= */

typedef struct oai {
    ss_openai_opts_t o;     /* strings below are owned copies */
    char *url, *model, *api_key;
    char *completions_url, *embeddings_url;
    CURLM *multi;
    pthread_mutex_t mu;     /* one batch at a time on the multi handle */
} oai_t;

/* One inference request's HTTP life. */
typedef struct job {
    const ss_infer_req_t *req;
    ss_infer_res_t *res;
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

static int build_body(oai_t *b, const ss_infer_req_t *r, ss_buf_t *out)
{
    ss_buf_puts(out, "{\"model\":");
    ss_buf_put_json_str(out, b->model, strlen(b->model));
    const char *p = r->prompt ? r->prompt : "";
    if (r->kind == SS_INFER_EMBED) {
        ss_buf_puts(out, ",\"input\":");
        ss_buf_put_json_str(out, p, strlen(p));
        return ss_buf_putc(out, '}');
    }
    ss_buf_puts(out, ",\"prompt\":");
    ss_buf_put_json_str(out, p, strlen(p));
    if (r->kind == SS_INFER_GENERATE) {
        ss_buf_printf(out, ",\"max_tokens\":%d,\"temperature\":%.9g", SS_MAX(r->max_tokens, 1),
                      (double)r->temperature);
        if (r->temperature > 0) ss_buf_printf(out, ",\"seed\":%llu", (unsigned long long)(r->seed & 0x7fffffffffffffffULL));
        if (r->stop) {
            ss_buf_puts(out, ",\"stop\":[");
            ss_buf_put_json_str(out, r->stop, strlen(r->stop));
            ss_buf_putc(out, ']');
        }
    } else {
        ss_buf_printf(out, ",\"max_tokens\":1,\"temperature\":0,\"logprobs\":%d,\"echo\":false",
                      b->o.top_logprobs);
    }
    return ss_buf_putc(out, '}');
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

static void job_fail(oai_t *b, job_t *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void job_fail(oai_t *b, job_t *j, int code, const char *fmt, ...)
{
    ss_buf_t m = SS_BUF_INIT;
    ss_buf_printf(&m, "openai backend %s: ", b->url);
    va_list ap;
    va_start(ap, fmt);
    ss_buf_vprintf(&m, fmt, ap);
    va_end(ap);
    ss_infer_res_clear(j->res);
    j->res->status = code;
    j->res->error = ss_buf_take(&m);
    j->done = 1;
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

static int read_top(const jv_t *choice, toplp_t *t)
{
    const jv_t *top = jidx(jget(jget(choice, "logprobs"), "top_logprobs"), 0);
    t->n = 0;
    if (top && top->t == JOBJ) {
        for (int i = 0; i < top->n && t->n < 64; i++)
            if (top->kids[i]->t == JNUM) {
                t->tok[t->n] = top->keys[i];
                t->lp[t->n++] = top->kids[i]->num;
            }
    } else if (top && top->t == JARR) {
        for (int i = 0; i < top->n && t->n < 64; i++) {
            const jv_t *tk = jget(top->kids[i], "token"), *lp = jget(top->kids[i], "logprob");
            if (tk && tk->t == JSTR && lp && lp->t == JNUM) {
                t->tok[t->n] = tk->str;
                t->lp[t->n++] = lp->num;
            }
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

static void usage(const jv_t *doc, ss_infer_res_t *res)
{
    const jv_t *u = jget(doc, "usage"), *pt = jget(u, "prompt_tokens"), *ct = jget(u, "completion_tokens");
    if (pt && pt->t == JNUM) res->prompt_tokens = (int)pt->num;
    if (ct && ct->t == JNUM) res->gen_tokens = (int)ct->num;
}

/* Fills j->res from a 2xx body, or fails the job with a message naming what is missing. */
static void parse_ok(oai_t *b, job_t *j)
{
    char sn[256];
    size_t at = 0;
    jv_t *doc = json_parse(j->resp.data ? j->resp.data : "", j->resp.len, &at);
    if (!doc) {
        job_fail(b, j, SS_ERR_HTTP, "bad JSON from %s at byte %zu: %s", j->path, at, snippet(j, sn, sizeof sn));
        return;
    }
    const ss_infer_req_t *r = j->req;
    ss_infer_res_t *res = j->res;
    const char *missing = NULL;
    if (r->kind == SS_INFER_EMBED) {
        const jv_t *e = jget(jidx(jget(doc, "data"), 0), "embedding");
        if (!e || e->t != JARR || e->n == 0) missing = "data[0].embedding";
        else {
            res->emb = malloc((size_t)e->n * sizeof(float));
            res->dim = e->n;
            for (int i = 0; i < e->n && res->emb; i++) {
                if (e->kids[i]->t != JNUM) { missing = "numeric data[0].embedding"; break; }
                res->emb[i] = (float)e->kids[i]->num;
            }
        }
    } else {
        const jv_t *c0 = jidx(jget(doc, "choices"), 0), *txt = jget(c0, "text");
        toplp_t t;
        if (!c0) missing = "choices[0]";
        else if (r->kind == SS_INFER_GENERATE) {
            if (!txt || txt->t != JSTR) missing = "choices[0].text";
            else res->text = ss_strdup(txt->str);
        } else if (read_top(c0, &t) != 0) {
            missing = "choices[0].logprobs.top_logprobs[0]";
        } else if (r->kind == SS_INFER_CHOOSE) {
            res->nprobs = r->nchoices;
            res->probs = calloc((size_t)SS_MAX(r->nchoices, 1), sizeof(float));
            if (res->probs) choose_probs(&t, r, res->probs);
        } else if (score_value(&t, r, &res->score) != 0) {
            jv_free(doc);
            job_fail(b, j, SS_ERR_MODEL, "no integer %d..%d among the top %d tokens from %s: %s",
                     r->score_min, r->score_max, t.n, j->path, snippet(j, sn, sizeof sn));
            return;
        }
    }
    if (missing) {
        jv_free(doc);
        job_fail(b, j, SS_ERR_HTTP, "response from %s lacks %s: %s", j->path, missing, snippet(j, sn, sizeof sn));
        return;
    }
    usage(doc, res);
    jv_free(doc);
    res->status = SS_OK;
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

static int oai_run(ss_infer_backend_t *be, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res,
                   char *err, size_t errsz)
{
    oai_t *b = be->impl;
    job_t *jobs = calloc((size_t)SS_MAX(n, 1), sizeof *jobs);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    char *auth = b->api_key ? ss_sprintf("Authorization: Bearer %s", b->api_key) : NULL;
    if (auth) hdrs = curl_slist_append(hdrs, auth);
    free(auth);
    if (!jobs || !hdrs) {
        free(jobs);
        curl_slist_free_all(hdrs);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "openai backend %s: out of memory", b->url);
    }
    for (int i = 0; i < n; i++) {
        ss_buf_t body = SS_BUF_INIT;
        int emb = reqs[i].kind == SS_INFER_EMBED;
        jobs[i] = (job_t){.req = &reqs[i], .res = &res[i], .hdrs = hdrs,
                          .url = emb ? b->embeddings_url : b->completions_url,
                          .path = emb ? "/v1/embeddings" : "/v1/completions"};
        build_body(b, &reqs[i], &body);
        jobs[i].body = ss_buf_take(&body);
        if (reqs[i].kind == SS_INFER_CHOOSE && (reqs[i].nchoices <= 0 || !reqs[i].choices))
            job_fail(b, &jobs[i], SS_ERR_INVALID, "CHOOSE request %d without choices", i);
    }
    int pending = 0;
    for (int i = 0; i < n; i++) pending += !jobs[i].done;
    pthread_mutex_lock(&b->mu);
    if (pending) run_jobs(b, jobs, n);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < n; i++) {
        free(jobs[i].body);
        ss_buf_free(&jobs[i].resp);
    }
    free(jobs);
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
        free(b);
    }
    free(be->model_id);
    free(be);
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
    b->url = ss_strdup(o->url);
    b->model = ss_strdup(o->model);
    b->api_key = o->api_key && *o->api_key ? ss_strdup(o->api_key) : NULL;
    b->completions_url = endpoint(o->url, "completions");
    b->embeddings_url = endpoint(o->url, "embeddings");
    b->multi = curl_multi_init();
    pthread_mutex_init(&b->mu, NULL);
    be->kind = "openai";
    be->model_id = ss_sprintf("openai:%s:%s", o->url, o->model);
    be->impl = b;
    be->run = oai_run;
    be->destroy = oai_destroy;
    if (!b->multi || !be->model_id || !b->completions_url || !b->embeddings_url) {
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
