/*
 * backend_pool.c — implements ss_pool.h: routing of inference requests over
 * several workers with prefix affinity, load balancing, failover and recovery.
 */
#include "ss_pool.h"

#include "ss_backends.h"
#include "ss_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct member {
    ss_infer_backend_t *be;
    uint64_t seed;        /* rendezvous hashing weight seed */
    int inflight;
    int down;             /* 1 while cooling down */
    int64_t retry_at_ns;  /* when a down worker may be tried again */
    int cooldown_ms;
    int64_t requests, failures;
} member_t;

typedef struct pool {
    ss_pool_opts_t o;
    member_t *m;
    int n;
    pthread_mutex_t mu;
} pool_t;

static int pool_run(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err,
                    size_t errsz);
static void pool_destroy(ss_infer_backend_t *b);

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

/* Transport-level failure: the worker could not answer (as opposed to a bad request). */
static int transport_failure(const part_t *t)
{
    if (t->rc)
        return 1;
    for (int i = 0; i < t->n; i++)
        if (t->res[i].status == SS_ERR_HTTP || t->res[i].status == SS_ERR_TIMEOUT || t->res[i].status == SS_ERR_IO)
            return 1;
    return 0;
}

static void mark(pool_t *p, int w, int failed, int n)
{
    member_t *m = &p->m[w];
    pthread_mutex_lock(&p->mu);
    m->inflight -= n;
    if (failed) {
        m->failures++;
        m->cooldown_ms = m->down ? SS_MIN(m->cooldown_ms * 2, p->o.max_cooldown_ms) : p->o.cooldown_ms;
        m->down = 1;
        m->retry_at_ns = ss_now_ns() + (int64_t)m->cooldown_ms * 1000000LL;
        ss_log(SS_LOG_WARN, "pool", "worker %s failed; retrying its requests elsewhere, next try in %d ms",
               m->be->model_id ? m->be->model_id : "?", m->cooldown_ms);
    } else if (m->down) {
        m->down = 0;
        ss_log(SS_LOG_INFO, "pool", "worker %s is back", m->be->model_id ? m->be->model_id : "?");
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
    /* each round either answers requests or excludes at least one worker */
    for (int round = 0; npend > 0 && round <= p->n; round++) {
        int left = route_round(p, reqs, res, pending, npend, excluded, lasterr, sizeof lasterr);
        if (left < 0) {
            npend = -1;
            break;
        }
        if (left == npend && round > 0)
            break;
        npend = left;
    }
    int rc = SS_OK;
    if (npend != 0) {
        for (int k = 0; k < npend; k++)
            ss_infer_res_fail(&res[pending[k]], SS_ERR_HTTP, "no worker could answer");
        rc = ss_seterr(err, errsz, SS_ERR_HTTP, "no healthy worker in pool %s%s%s", b->model_id,
                       lasterr[0] ? ": last error: " : "", lasterr);
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
    pthread_mutex_init(&p->mu, NULL);
    for (int i = 0; i < n; i++) {
        m[i].be = workers[i];
        m[i].seed = ss_hash64(&i, sizeof i, 0xa11ce) | 1;
    }
    p->m = m;
    p->n = n;
    b->kind = "pool";
    b->model_id = ss_sprintf("pool:%s", name ? name : "workers");
    b->impl = p;
    b->run = pool_run;
    b->count_tokens = pool_count_tokens;
    b->destroy = pool_destroy;
    b->cancel = pool_cancel;
    return b;
}

ss_infer_backend_t *ss_backend_workers_new(const char *urls_csv, const char *model, const char *api_key,
                                           int timeout_ms, char *err, size_t errsz)
{
    char *list = ss_strdup(urls_csv ? urls_csv : "");
    ss_infer_backend_t *ws[64];
    int n = 0;
    for (char *save = NULL, *u = strtok_r(list, ", ", &save); u && n < 64; u = strtok_r(NULL, ", ", &save)) {
        ss_openai_opts_t o;
        memset(&o, 0, sizeof o);
        o.url = u;
        o.model = model;
        o.api_key = api_key;
        o.timeout_ms = timeout_ms;
        o.max_retries = 1;  /* the pool fails over; don't wait long on a dead worker */
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
    return ss_backend_pool_new(model, ws, n, NULL, err, errsz);
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
