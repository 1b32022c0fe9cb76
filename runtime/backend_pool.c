/*
 * backend_pool.c — implements ss_pool.h: routing of inference requests over
 * several workers with prefix affinity, load balancing, failover and recovery
 * (cooldowns doubling with jitter; when every worker is down or busy, rounds are
 * retried until max_wait_ms has passed). Also ss_backend_openai_config
 * (ss_backends.h): a CREATE MODEL definition to an openai backend or a pool.
 */
#include "ss_pool.h"

#include "ss_backends.h"
#include "ss_cache.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct member {
    ss_infer_backend_t *be;
    uint64_t seed;        /* rendezvous hashing weight seed */
    int inflight;
    int down;             /* 1 while cooling down */
    int64_t retry_at_ns;  /* when a down worker may be tried again */
    int busy;             /* down because it answered 429, not because it failed */
    int cooldown_ms;
    int64_t requests, failures;
} member_t;

typedef struct pool {
    ss_pool_opts_t o;
    member_t *m;
    int n;
    pthread_mutex_t mu;
    uint64_t rng;         /* jitter of cooldowns */
} pool_t;

static int pool_run(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err,
                    size_t errsz);
static void pool_destroy(ss_infer_backend_t *b);

static double jitter(pool_t *p) /* 1..1.5, under mu */
{
    uint64_t z = (p->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return 1.0 + 0.5 * (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* A worker is usable when up, or down but past its cooldown (then it is tried once more). */
static int usable(const member_t *m, int64_t now) { return !m->down || now >= m->retry_at_ns; }

static int pick(pool_t *p, const ss_infer_req_t *r, const int *excluded, int64_t now)
{
    size_t plen = r->prefix_len && r->prefix_len <= strlen(r->prompt) ? r->prefix_len : strlen(r->prompt);
    uint64_t h = ss_hash64(r->prompt, plen, 0x5eed);
    int best = -1, least = -1;
    uint64_t bestw = 0;
    for (int i = 0; i < p->n; i++) {
        if (excluded[i] || !usable(&p->m[i], now))
            continue;
        uint64_t w = ss_hash_combine(h, p->m[i].seed);
        if (best < 0 || w > bestw)
            best = i, bestw = w;
        if (least < 0 || p->m[i].inflight < p->m[least].inflight)
            least = i;
    }
    if (best >= 0 && p->m[best].inflight - p->m[least].inflight >= p->o.imbalance)
        best = least;
    return best;
}

typedef struct part {
    pool_t *p;
    int w;              /* worker index */
    int n;
    int *idx;           /* indices into the caller's arrays */
    ss_infer_req_t *reqs;
    ss_infer_res_t *res;
    int rc;
    char err[SS_ERRSZ];
    pthread_t th;
    int threaded;       /* 1 if th must be joined */
} part_t;

static void *part_main(void *arg)
{
    part_t *t = arg;
    ss_infer_backend_t *be = t->p->m[t->w].be;
    t->rc = be->run(be, t->reqs, t->n, t->res, t->err, sizeof t->err);
    return NULL;
}

/* The worker could not answer (as opposed to a bad request): transport failures, and 429 (its
 * queue is full: another worker may have room). Returns 2 for busy, 1 for failed, 0 for answered. */
static int transport_failure(const part_t *t)
{
    if (t->rc)
        return 1;
    int busy = 0;
    for (int i = 0; i < t->n; i++) {
        int st = t->res[i].status;
        if (st == SS_ERR_HTTP || st == SS_ERR_TIMEOUT || st == SS_ERR_IO)
            return 1;
        busy |= st == SS_ERR_BUSY;
    }
    return busy ? 2 : 0;
}

static void mark(pool_t *p, int w, int failed, int n)
{
    member_t *m = &p->m[w];
    pthread_mutex_lock(&p->mu);
    m->inflight -= n;
    if (failed == 2) { /* busy: rest it a moment, without calling it down */
        m->retry_at_ns = ss_now_ns() + (int64_t)(p->o.cooldown_ms * jitter(p)) * 1000000LL;
        m->down = 1;
        m->busy = 1;
    } else if (failed) {
        m->failures++;
        m->cooldown_ms = m->down && !m->busy ? SS_MIN(m->cooldown_ms * 2, p->o.max_cooldown_ms) : p->o.cooldown_ms;
        m->down = 1;
        m->busy = 0;
        int64_t wait = (int64_t)(m->cooldown_ms * jitter(p));
        m->retry_at_ns = ss_now_ns() + wait * 1000000LL;
        ss_log(SS_LOG_WARN, "pool", "worker %s failed; retrying its requests elsewhere, next try in %lld ms",
               m->be->model_id ? m->be->model_id : "?", (long long)wait);
    } else if (m->down) {
        m->down = 0;
        if (!m->busy)
            ss_log(SS_LOG_INFO, "pool", "worker %s is back", m->be->model_id ? m->be->model_id : "?");
        m->busy = 0;
    }
    pthread_mutex_unlock(&p->mu);
}

/* One routing round over the requests still pending; returns how many remain pending. */
static int route_round(pool_t *p, const ss_infer_req_t *reqs, ss_infer_res_t *res, int *pending, int npend,
                       int *excluded, char *err, size_t errsz)
{
    part_t *parts = calloc((size_t)p->n, sizeof *parts);
    if (!parts)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory"), -1;
    int64_t now = ss_now_ns();
    pthread_mutex_lock(&p->mu);
    int routed = 0;
    for (int k = 0; k < npend; k++) {
        int w = pick(p, &reqs[pending[k]], excluded, now);
        if (w < 0)
            continue;
        part_t *t = &parts[w];
        if (!t->idx) {
            t->idx = calloc((size_t)npend, sizeof *t->idx);
            t->reqs = calloc((size_t)npend, sizeof *t->reqs);
            t->res = calloc((size_t)npend, sizeof *t->res);
        }
        if (!t->idx || !t->reqs || !t->res)
            continue;
        t->idx[t->n] = pending[k];
        t->reqs[t->n++] = reqs[pending[k]];
        p->m[w].inflight++;
        p->m[w].requests++;
        routed++;
    }
    pthread_mutex_unlock(&p->mu);
    for (int w = 0; w < p->n; w++)
        if (parts[w].n) {
            parts[w].p = p;
            parts[w].w = w;
            parts[w].threaded = pthread_create(&parts[w].th, NULL, part_main, &parts[w]) == 0;
            if (!parts[w].threaded)
                part_main(&parts[w]); /* no thread to be had: run it here */
        }
    int left = 0;
    for (int w = 0; w < p->n; w++) {
        part_t *t = &parts[w];
        if (!t->n)
            continue;
        if (t->threaded)
            pthread_join(t->th, NULL);
        int failed = transport_failure(t);
        mark(p, w, failed, t->n);
        for (int i = 0; i < t->n; i++) {
            if (failed) {
                excluded[w] = 1;
                pending[left++] = t->idx[i];
                ss_infer_res_clear(&t->res[i]);
                if (t->rc)
                    snprintf(err, errsz, "%s", t->err);
            } else
                res[t->idx[i]] = t->res[i];
        }
        free(t->idx);
        free(t->reqs);
        free(t->res);
    }
    free(parts);
    if (routed == 0)
        return npend; /* nobody could take them */
    return left;
}

/* Sleeps until the first down worker may be tried again (at most until deadline); 0 if past it. */
static int wait_for_worker(pool_t *p, int64_t deadline)
{
    int64_t now = ss_now_ns(), next = deadline;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++)
        if (p->m[i].down && p->m[i].retry_at_ns < next)
            next = p->m[i].retry_at_ns;
    pthread_mutex_unlock(&p->mu);
    if (now >= deadline)
        return 0;
    int64_t ns = SS_MAX(next - now, 1000000LL);
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    nanosleep(&ts, NULL);
    return 1;
}

static int pool_run(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err,
                    size_t errsz)
{
    pool_t *p = b->impl;
    int *pending = malloc((size_t)(n ? n : 1) * sizeof *pending);
    int *excluded = calloc((size_t)p->n, sizeof *excluded);
    if (!pending || !excluded) {
        free(pending), free(excluded);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        pending[i] = i;
    int npend = n;
    char lasterr[SS_ERRSZ] = "";
    int64_t deadline = ss_now_ns() + (int64_t)p->o.max_wait_ms * 1000000LL;
    /* each round either answers requests or excludes at least one worker; when every worker is
     * excluded or resting, wait for the first to be usable again, until the deadline */
    for (int round = 0; npend > 0; round++) {
        int left = route_round(p, reqs, res, pending, npend, excluded, lasterr, sizeof lasterr);
        if (left < 0) {
            npend = -1;
            break;
        }
        if (left == npend && round > 0) {
            if (!wait_for_worker(p, deadline))
                break;
            memset(excluded, 0, (size_t)p->n * sizeof *excluded); /* everyone gets another try */
        }
        npend = left;
    }
    int rc = SS_OK;
    if (npend != 0) {
        for (int k = 0; k < npend; k++)
            ss_infer_res_fail(&res[pending[k]], SS_ERR_HTTP, "no worker could answer");
        rc = ss_seterr(err, errsz, SS_ERR_HTTP, "no healthy worker in pool %s (waited %d ms)%s%s", b->model_id,
                       p->o.max_wait_ms, lasterr[0] ? ": last error: " : "", lasterr);
    }
    free(pending);
    free(excluded);
    return rc;
}

static int pool_count_tokens(ss_infer_backend_t *b, const char *text)
{
    pool_t *p = b->impl;
    for (int i = 0; i < p->n; i++)
        if (p->m[i].be->count_tokens)
            return p->m[i].be->count_tokens(p->m[i].be, text);
    return -1;
}

static void pool_cancel(ss_infer_backend_t *b)
{
    pool_t *p = b->impl;
    for (int i = 0; i < p->n; i++)
        if (p->m[i].be->cancel)
            p->m[i].be->cancel(p->m[i].be);
}

static void pool_destroy(ss_infer_backend_t *b)
{
    if (!b)
        return;
    pool_t *p = b->impl;
    if (p) {
        for (int i = 0; i < p->n; i++)
            p->m[i].be->destroy(p->m[i].be);
        free(p->m);
        pthread_mutex_destroy(&p->mu);
        free(p);
    }
    free(b->model_id);
    free(b);
}

ss_infer_backend_t *ss_backend_pool_new(const char *name, ss_infer_backend_t **workers, int n,
                                        const ss_pool_opts_t *o, char *err, size_t errsz)
{
    ss_infer_backend_t *b = calloc(1, sizeof *b);
    pool_t *p = calloc(1, sizeof *p);
    member_t *m = calloc((size_t)(n > 0 ? n : 1), sizeof *m);
    if (!b || !p || !m || n <= 0) {
        for (int i = 0; i < n; i++)
            workers[i]->destroy(workers[i]);
        free(b), free(p), free(m);
        ss_seterr(err, errsz, n <= 0 ? SS_ERR_INVALID : SS_ERR_NOMEM,
                  n <= 0 ? "a worker pool needs at least one worker" : "out of memory");
        return NULL;
    }
    p->o.imbalance = o && o->imbalance > 0 ? o->imbalance : 64;
    p->o.cooldown_ms = o && o->cooldown_ms > 0 ? o->cooldown_ms : 500;
    p->o.max_cooldown_ms = o && o->max_cooldown_ms > 0 ? o->max_cooldown_ms : 10000;
    p->o.max_wait_ms = o && o->max_wait_ms > 0 ? o->max_wait_ms : o && o->max_wait_ms < 0 ? 0 : 2000;
    p->rng = (uint64_t)ss_now_ns();
    pthread_mutex_init(&p->mu, NULL);
    for (int i = 0; i < n; i++) {
        m[i].be = workers[i];
        m[i].seed = ss_hash64(&i, sizeof i, 0xa11ce) | 1;
    }
    p->m = m;
    p->n = n;
    int conc = 0;
    for (int i = 0; i < n; i++)
        conc += SS_MAX(workers[i]->max_concurrent, 1);
    b->max_concurrent = conc; /* batches at once: each worker takes its own */
    b->kind = "pool";
    b->model_id = ss_sprintf("pool:%s", name ? name : "workers");
    b->impl = p;
    b->run = pool_run;
    b->count_tokens = pool_count_tokens;
    b->destroy = pool_destroy;
    b->cancel = pool_cancel;
    return b;
}

ss_infer_backend_t *ss_backend_workers_open(const char *urls_csv, const ss_openai_opts_t *tmpl, char *err,
                                            size_t errsz)
{
    char *list = ss_strdup(urls_csv ? urls_csv : "");
    ss_infer_backend_t *ws[64];
    int n = 0;
    for (char *save = NULL, *u = strtok_r(list, ", ", &save); u && n < 64; u = strtok_r(NULL, ", ", &save)) {
        ss_openai_opts_t o = *tmpl;
        o.url = u;
        if (!tmpl->max_retries)
            o.max_retries = 1; /* the pool fails over; don't wait long on a dead worker */
        if (!tmpl->backoff_ms)
            o.backoff_ms = 50;
        ws[n] = ss_backend_openai_open(&o, err, errsz);
        if (!ws[n]) {
            for (int i = 0; i < n; i++)
                ws[i]->destroy(ws[i]);
            free(list);
            return NULL;
        }
        n++;
    }
    free(list);
    return ss_backend_pool_new(tmpl->model, ws, n, NULL, err, errsz);
}

ss_infer_backend_t *ss_backend_workers_new(const char *urls_csv, const char *model, const char *api_key,
                                           int timeout_ms, char *err, size_t errsz)
{
    ss_openai_opts_t o = {.model = model, .api_key = api_key, .timeout_ms = timeout_ms};
    return ss_backend_workers_open(urls_csv, &o, err, errsz);
}

/* ---- CREATE MODEL ... WITH (backend = 'openai', ...) ---- */

/* Integer option in [lo, hi]; absent: *out unchanged. */
static int int_opt(const char *name, const char *opt, const char *v, long lo, long hi, int *out, char *err,
                   size_t errsz)
{
    if (!v)
        return SS_OK;
    char *e;
    long x = strtol(v, &e, 10);
    while (isspace((unsigned char)*e))
        e++;
    if (e == v || *e || x < lo || x > hi)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "model %s: %s must be an integer between %ld and %ld, not '%s'",
                         name, opt, lo, hi, v);
    *out = (int)x;
    return SS_OK;
}

ss_infer_backend_t *ss_backend_openai_config(const char *name, const char *(*get)(void *ctx, const char *opt),
                                             void *ctx, char *err, size_t errsz)
{
    ss_openai_opts_t o = {.model = get(ctx, "model"), .organization = get(ctx, "organization"),
                          .project = get(ctx, "project"), .timeout_ms = 60000};
    const char *url = get(ctx, "url"), *keyenv = get(ctx, "api_key_env"), *api = get(ctx, "api");
    if (!o.model)
        o.model = name;
    if (!url) {
        ss_seterr(err, errsz, SS_ERR_INVALID, "model %s: backend openai needs WITH (url = '...')", name);
        return NULL;
    }
    if (keyenv) {
        o.api_key = getenv(keyenv);
        if (!o.api_key || !*o.api_key) {
            ss_seterr(err, errsz, SS_ERR_INVALID, "model %s: api_key_env names %s, which is not set", name, keyenv);
            return NULL;
        }
    }
    if (api && !strcmp(api, "chat"))
        o.api = SS_OPENAI_API_CHAT;
    else if (api && !strcmp(api, "completions"))
        o.api = SS_OPENAI_API_COMPLETIONS;
    else if (api && strcmp(api, "auto")) {
        ss_seterr(err, errsz, SS_ERR_INVALID, "model %s: api must be 'auto', 'chat' or 'completions', not '%s'", name,
                  api);
        return NULL;
    }
    int rc = int_opt(name, "timeout_ms", get(ctx, "timeout_ms"), 1, 3600000, &o.timeout_ms, err, errsz);
    if (!rc) rc = int_opt(name, "max_concurrency", get(ctx, "max_concurrency"), 1, 1024, &o.max_concurrency, err, errsz);
    if (!rc) rc = int_opt(name, "max_retries", get(ctx, "max_retries"), -1, 100, &o.max_retries, err, errsz);
    if (!rc) rc = int_opt(name, "top_logprobs", get(ctx, "top_logprobs"), 1, 20, &o.top_logprobs, err, errsz);
    if (!rc) rc = int_opt(name, "rpm", get(ctx, "rpm"), 1, 100000000, &o.rpm, err, errsz);
    if (!rc) rc = int_opt(name, "tpm", get(ctx, "tpm"), 1, 2000000000, &o.tpm, err, errsz);
    if (!rc) rc = int_opt(name, "prompt_batch", get(ctx, "prompt_batch"), 1, 4096, &o.prompt_batch, err, errsz);
    if (!rc) rc = int_opt(name, "embed_batch", get(ctx, "embed_batch"), 1, 4096, &o.embed_batch, err, errsz);
    if (rc)
        return NULL;
    if (strchr(url, ',')) /* several workers: a pool with prefix affinity and failover */
        return ss_backend_workers_open(url, &o, err, errsz);
    o.url = url;
    return ss_backend_openai_open(&o, err, errsz);
}

int ss_pool_stats(ss_infer_backend_t *b, int i, ss_pool_worker_stats_t *out)
{
    if (!b || strcmp(b->kind, "pool"))
        return SS_ERR_INVALID;
    pool_t *p = b->impl;
    if (i < 0 || i >= p->n)
        return SS_ERR_INVALID;
    pthread_mutex_lock(&p->mu);
    out->requests = p->m[i].requests;
    out->failures = p->m[i].failures;
    out->healthy = !p->m[i].down;
    out->inflight = p->m[i].inflight;
    pthread_mutex_unlock(&p->mu);
    return SS_OK;
}
