/*
 * dispatch.c — the inference dispatcher (ss_dispatch.h).
 *
 * Owns the registered models, each with a queue of requests and worker threads
 * that feed its backend, the table of requests queued or running (keyed by the
 * request's cache key, so identical requests from any caller are computed
 * once), the result cache (runtime/cache.c) and the wait groups of
 * non-blocking callers.
 *
 * A request's life: ss_dispatch_run computes its key (ss_infer_key) and folds
 * identical requests of the batch; under the dispatcher mutex each distinct key
 * joins an entry already queued or running, or is answered from the cache, or
 * becomes a new entry at the tail of its model's queue (a copy of the request,
 * so the caller's strings may go away). A worker takes up to max_batch ready
 * entries while the model has fewer than `capacity` requests in the backend,
 * runs them, stores the successful results in the cache in one durable
 * transaction, and only then removes the entries from the table: a caller
 * holding the mutex always finds a request queued, running or cached. A failed
 * entry that some non-blocking caller waits for goes back to the queue with
 * exponential backoff and jitter when the failure is transient (HTTP 5xx and
 * connection errors, 429, timeouts); otherwise the failure is its result. A failure
 * that retrying cannot mend (ss_dispatch_err_final: the request is invalid for the
 * model, e.g. a prompt longer than its context or max_tokens too small for a JSON
 * schema) is also remembered by key (the "failed" table), so the same request asked
 * again fails at once instead of calling the backend again, until the model is
 * replaced (ss_dispatch_replace_model).
 * Blocking callers wait on the dispatcher's condition variable for their
 * entries; non-blocking callers register their wait group on them and return.
 */
#include "ss_cache.h"
#include "ss_dispatch.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 30000
#define FAIL_LOG_EVERY_NS (30LL * 1000000000LL)

typedef enum { FL_QUEUED, FL_RUNNING, FL_DONE } fl_state_t;

typedef struct model model_t;

/* A request queued or running. In the key table while not done; freed once done
 * and no blocking waiter still has to copy its result. */
typedef struct inflight {
    char key[33];
    model_t *m;
    ss_infer_req_t req;          /* owned copy: prompt, choices and stop belong to the entry */
    fl_state_t state;
    int retry;                   /* failures are retried (a non-blocking caller waits for it) */
    int attempts;                /* failed attempts so far */
    int64_t not_before_ns;       /* queued: not before this time (backoff) */
    int waiters;                 /* blocking callers that will copy res */
    ss_infer_res_t res;          /* the final result, for blocking waiters */
    ss_dispatch_wg_t **wgs;      /* wait groups counting on it; owned array */
    int nwg, capwg;
    struct inflight *next;       /* key table chain */
    struct inflight *qnext;      /* model queue */
} inflight_t;

struct model {
    char *name;
    ss_infer_backend_t *b;
    ss_dispatch_t *d;
    int capacity;                /* max requests in the backend at once */
    int swapping;                /* its backend is being replaced: workers take nothing new */
    int nworkers;
    pthread_t *workers;
    int nstarted;
    pthread_cond_t cv;           /* queue changed or capacity freed (with d->mu) */
    inflight_t *qhead, *qtail;
    int queued, inflight;
    /* status */
    int failing;
    int64_t failing_since_ms, next_retry_ms, last_fail_log_ns, failing_since_ns;
    char last_error[256];
    int last_code;               /* the last failure's ss_err_t */
    int64_t calls, failures;
    int64_t busy_ns, busy_since_ns;  /* time with requests in the backend: total of past stretches, start of this one */
    int64_t lat_hist[SS_DISPATCH_LAT_NB]; /* backend calls per latency bucket (not cumulative) */
    int64_t lat_count;
    double lat_sum_s;
};

const double ss_dispatch_lat_bounds[SS_DISPATCH_LAT_NB] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                          1, 2.5, 5, 10, 30, 60, INFINITY};

struct ss_dispatch_wg {
    ss_dispatch_t *d;
    pthread_cond_t cv;           /* with d->mu */
    int outstanding, completed, registered;
    int woken;
    char model[64];
    char (*paid)[33];            /* keys this group queued (its own calls); owned */
    int npaid, cappaid;
    struct ss_dispatch_wg *next; /* d->wgs list */
};

struct ss_dispatch {
    pthread_mutex_t mu;          /* guards everything below and every entry, model and group */
    pthread_cond_t cv;           /* broadcast when an entry is done (blocking waiters) */
    ss_cache_t *cache;           /* NULL: no persistent cache */
    int max_batch;
    int stopping;
    model_t **models;            /* stable pointers */
    int nmodels, def;
    inflight_t **fl_tab;         /* entries by key: hash table of chains, fl_cap buckets */
    size_t fl_cap, fl_n;
    ss_dispatch_wg_t *wgs;
    ss_infer_stats_t totals;
    struct failed { char key[33]; model_t *m; int code; char msg[256]; } *failed; /* owned: final failures
                                    by key, open addressing over failed_cap slots (key[0] = 0: free) */
    size_t failed_cap, failed_n;
    int inflight;                /* requests in backend calls now, over every model */
    int64_t busy_ns, busy_since_ns; /* wall time with inflight > 0: past stretches, start of this one */
    int64_t req_ns, req_at_ns;   /* integral of inflight over time, up to req_at_ns */
};

static _Thread_local ss_dispatch_wg_t *tl_wg;

static size_t fl_bucket(const char *key, size_t cap);
static void failed_forget(ss_dispatch_t *d, model_t *m);

static void account_load(ss_dispatch_t *d);

/* ---------------------------------------------------------------- open / close */

int ss_dispatch_open(const ss_dispatch_opts_t *opts, ss_dispatch_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_dispatch_t *d = calloc(1, sizeof *d);
    if (!d) return ss_seterr(err, errsz, SS_ERR_NOMEM, "dispatcher: out of memory");
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->max_batch = opts && opts->max_batch > 0 ? opts->max_batch : 32;
    d->def = -1;
    /* use_cache: 0 means the default (on when cache_path is set); negative turns it off */
    if (opts && opts->cache_path && opts->use_cache >= 0) {
        int rc = ss_cache_open(opts->cache_path, &d->cache, err, errsz);
        if (rc != SS_OK) {
            ss_dispatch_close(d);
            return rc;
        }
    }
    *out = d;
    return SS_OK;
}

static void entry_free(inflight_t *f)
{
    free((char *)f->req.prompt);
    free((char *)f->req.json_schema);
    free((char *)f->req.stop);
    for (int i = 0; f->req.choices && i < f->req.nchoices; i++) free((char *)f->req.choices[i]);
    free((void *)f->req.choices);
    for (int i = 0; f->req.stops && i < f->req.nstop; i++) free((char *)f->req.stops[i]);
    free((void *)f->req.stops);
    ss_infer_res_clear(&f->res);
    free(f->wgs);
    free(f);
}

void ss_dispatch_close(ss_dispatch_t *d)
{
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    for (int i = 0; i < d->nmodels; i++) pthread_cond_broadcast(&d->models[i]->cv);
    pthread_mutex_unlock(&d->mu);
    /* calls in progress end now (a slow or retried HTTP request could take minutes) */
    for (int i = 0; i < d->nmodels; i++)
        if (d->models[i]->b && d->models[i]->b->cancel) d->models[i]->b->cancel(d->models[i]->b);
    for (int i = 0; i < d->nmodels; i++) {
        model_t *m = d->models[i];
        for (int k = 0; k < m->nstarted; k++) pthread_join(m->workers[k], NULL);
    }
    for (size_t i = 0; i < d->fl_cap; i++) /* queued entries: never sent, so never paid */
        while (d->fl_tab[i]) {
            inflight_t *f = d->fl_tab[i];
            d->fl_tab[i] = f->next;
            entry_free(f);
        }
    free(d->fl_tab);
    free(d->failed);
    for (int i = 0; i < d->nmodels; i++) {
        model_t *m = d->models[i];
        if (m->b && m->b->destroy) m->b->destroy(m->b);
        free(m->name);
        free(m->workers);
        pthread_cond_destroy(&m->cv);
        free(m);
    }
    free(d->models);
    for (ss_dispatch_wg_t *g = d->wgs; g; g = g->next) g->d = NULL; /* owners destroy them */
    ss_cache_close(d->cache);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* ---------------------------------------------------------------- models */

static int find_model(ss_dispatch_t *d, const char *name)
{
    if (!name) return d->def;
    for (int i = 0; i < d->nmodels; i++)
        if (!strcmp(d->models[i]->name, name)) return i;
    return -1;
}

static void *worker_main(void *arg);

/* Starts the model's workers on first use (d->mu held). */
static int start_workers(model_t *m)
{
    if (m->nstarted || m->d->stopping) return SS_OK;
    /* workers never take the signals meant for the process's main thread (Ctrl-C...) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int k = 0; k < m->nworkers; k++) {
        if (pthread_create(&m->workers[k], NULL, worker_main, m) != 0) break;
        m->nstarted++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return m->nstarted ? SS_OK : SS_ERR_NOMEM;
}

/* Workers: one per concurrent backend call the capacity allows (d->mu held). */
static void size_workers(ss_dispatch_t *d, model_t *m)
{
    int conc = m->b->max_concurrent > 1 ? m->b->max_concurrent : 1;
    int want = (m->capacity + d->max_batch - 1) / d->max_batch;
    m->nworkers = SS_MAX(1, SS_MIN(conc, want));
}

int ss_dispatch_add_model(ss_dispatch_t *d, const char *name, ss_infer_backend_t *b, int is_default,
                          char *err, size_t errsz)
{
    int rc = SS_OK;
    if (!b) return ss_seterr(err, errsz, SS_ERR_INVALID, "dispatcher: NULL backend for model %s",
                             name ? name : "(default)");
    pthread_mutex_lock(&d->mu);
    if (!name || !*name) {
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "dispatcher: a model needs a name");
    } else if (find_model(d, name) >= 0) {
        rc = ss_seterr(err, errsz, SS_ERR_EXISTS, "dispatcher: model %s already registered", name);
    } else {
        model_t **ms = realloc(d->models, (size_t)(d->nmodels + 1) * sizeof *ms);
        model_t *m = calloc(1, sizeof *m);
        if (ms) d->models = ms;
        if (!ms || !m || !(m->name = ss_strdup(name)) || !(m->workers = calloc(64, sizeof *m->workers))) {
            if (m) free(m->name);
            free(m);
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "dispatcher: out of memory");
        } else {
            m->b = b;
            m->d = d;
            pthread_cond_init(&m->cv, NULL);
            m->capacity = b->max_concurrent > 1 ? 2 * d->max_batch : d->max_batch;
            size_workers(d, m);
            d->models[d->nmodels] = m;
            if (d->def < 0 || is_default) d->def = d->nmodels;
            d->nmodels++;
            b = NULL;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (b && b->destroy) b->destroy(b); /* ownership taken even on failure */
    return rc;
}

int ss_dispatch_replace_model(ss_dispatch_t *d, const char *name, ss_infer_backend_t *b, char *err, size_t errsz)
{
    if (!b) return ss_seterr(err, errsz, SS_ERR_INVALID, "dispatcher: NULL backend for model %s", name ? name : "");
    pthread_mutex_lock(&d->mu);
    int i = name ? find_model(d, name) : -1;
    if (i < 0) {
        pthread_mutex_unlock(&d->mu);
        return ss_dispatch_add_model(d, name, b, 0, err, errsz);
    }
    model_t *m = d->models[i];
    m->swapping = 1;
    while (m->inflight > 0) pthread_cond_wait(&d->cv, &d->mu); /* calls in progress finish on the old one */
    ss_infer_backend_t *old = m->b;
    m->b = b;
    m->capacity = b->max_concurrent > 1 ? 2 * d->max_batch : d->max_batch;
    if (!m->nstarted) size_workers(d, m);
    m->nworkers = SS_MIN(m->nworkers, 64);
    m->failing = 0;
    m->next_retry_ms = 0;
    m->last_error[0] = 0;
    failed_forget(d, m); /* the new backend may answer what the old one refused */
    m->swapping = 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&d->mu);
    if (old && old->destroy) old->destroy(old);
    return SS_OK;
}

int ss_dispatch_set_capacity(ss_dispatch_t *d, const char *name, int max_in_flight, char *err, size_t errsz)
{
    if (max_in_flight < 1 || max_in_flight > 100000)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "max_in_flight must be between 1 and 100000, got %d",
                         max_in_flight);
    pthread_mutex_lock(&d->mu);
    int i = find_model(d, name);
    if (i >= 0) {
        model_t *m = d->models[i];
        m->capacity = max_in_flight;
        if (!m->nstarted) size_workers(d, m);
        m->nworkers = SS_MIN(m->nworkers, 64);
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return i >= 0 ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOTFOUND, "dispatcher: no model named %s", name);
}

int ss_dispatch_has_model(ss_dispatch_t *d, const char *name)
{
    pthread_mutex_lock(&d->mu);
    int i = find_model(d, name);
    pthread_mutex_unlock(&d->mu);
    return i >= 0;
}

void ss_dispatch_totals(ss_dispatch_t *d, ss_infer_stats_t *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->totals;
    pthread_mutex_unlock(&d->mu);
}

/* Adds the requests in flight since the last change to the load integral (d->mu held). */
static void account_load(ss_dispatch_t *d)
{
    int64_t now = ss_now_ns();
    if (d->req_at_ns)
        d->req_ns += (int64_t)d->inflight * (now - d->req_at_ns);
    d->req_at_ns = now;
}

int64_t ss_dispatch_busy_ns(ss_dispatch_t *d, int64_t *request_ns)
{
    pthread_mutex_lock(&d->mu);
    int64_t b = d->busy_ns + (d->inflight > 0 ? ss_now_ns() - d->busy_since_ns : 0);
    if (request_ns) {
        account_load(d);
        *request_ns = d->req_ns;
    }
    pthread_mutex_unlock(&d->mu);
    return b;
}

int ss_dispatch_in_flight(ss_dispatch_t *d)
{
    int n = 0;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->nmodels; i++) n += d->models[i]->inflight + d->models[i]->queued;
    pthread_mutex_unlock(&d->mu);
    return n;
}

int ss_dispatch_model_count(ss_dispatch_t *d)
{
    pthread_mutex_lock(&d->mu);
    int n = d->nmodels;
    pthread_mutex_unlock(&d->mu);
    return n;
}

const char *ss_dispatch_model_name(ss_dispatch_t *d, int i)
{
    pthread_mutex_lock(&d->mu);
    const char *n = i >= 0 && i < d->nmodels ? d->models[i]->name : NULL;
    pthread_mutex_unlock(&d->mu);
    return n;
}

int ss_dispatch_model_status(ss_dispatch_t *d, const char *name, ss_dispatch_model_status_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&d->mu);
    int i = find_model(d, name);
    if (i >= 0) {
        model_t *m = d->models[i];
        out->capacity = m->capacity;
        out->inflight = m->inflight;
        out->queued = m->queued;
        out->failing = m->failing;
        out->failing_since_ms = m->failing ? m->failing_since_ms : 0;
        out->next_retry_ms = m->failing ? m->next_retry_ms : 0;
        snprintf(out->last_error, sizeof out->last_error, "%s", m->last_error);
        out->last_code = m->last_code;
        out->calls = m->calls;
        out->failures = m->failures;
        out->busy_ns = m->busy_ns + (m->inflight > 0 ? ss_now_ns() - m->busy_since_ns : 0);
        int64_t cum = 0;
        for (int b = 0; b < SS_DISPATCH_LAT_NB; b++)
            out->lat_le[b] = cum += m->lat_hist[b];
        out->lat_count = m->lat_count;
        out->lat_sum_s = m->lat_sum_s;
    }
    pthread_mutex_unlock(&d->mu);
    return i >= 0 ? SS_OK : SS_ERR_NOTFOUND;
}

int ss_dispatch_model_failed(ss_dispatch_t *d, const char *name, const char *msg)
{
    pthread_mutex_lock(&d->mu);
    int i = find_model(d, name);
    if (i >= 0) {
        model_t *m = d->models[i];
        if (!m->failing) {
            m->failing = 1;
            m->failing_since_ms = ss_wall_ms();
            m->failing_since_ns = m->last_fail_log_ns = ss_now_ns();
        }
        m->failures++;
        m->last_code = SS_ERR_MODEL;
        m->next_retry_ms = 0; /* tried again by the next request */
        snprintf(m->last_error, sizeof m->last_error, "%s", msg ? msg : "failed");
    }
    pthread_mutex_unlock(&d->mu);
    return i >= 0 ? SS_OK : SS_ERR_NOTFOUND;
}

/* ---------------------------------------------------------------- final failures (d->mu held) */

int ss_dispatch_err_final(int code)
{
    return code == SS_ERR_INVALID || code == SS_ERR_UNSUPPORTED || code == SS_ERR_DENIED || code == SS_ERR_PARSE ||
           code == SS_ERR_SEMANTIC;
}

#define FAILED_MAX 4096 /* final failures remembered; beyond that the table starts again empty */

static struct failed *failed_slot(ss_dispatch_t *d, const char *key)
{
    if (!d->failed_cap) return NULL;
    size_t b = fl_bucket(key, d->failed_cap);
    for (size_t k = 0; k < d->failed_cap; k++) {
        struct failed *x = &d->failed[(b + k) & (d->failed_cap - 1)];
        if (!x->key[0] || !strcmp(x->key, key)) return x;
    }
    return NULL;
}

static const struct failed *failed_find(ss_dispatch_t *d, const char *key)
{
    const struct failed *x = failed_slot(d, key);
    return x && x->key[0] ? x : NULL;
}

/* Remembers f's final failure (best effort: without memory it is only not remembered). */
static void failed_note(ss_dispatch_t *d, const inflight_t *f, int code, const char *msg)
{
    if (!d->failed_cap || d->failed_n >= FAILED_MAX) {
        size_t cap = d->failed_cap ? d->failed_cap : 64;
        while (cap < 2 * FAILED_MAX && cap < 2 * (d->failed_n + 1)) cap *= 2;
        struct failed *t = calloc(cap, sizeof *t);
        if (!t) return;
        free(d->failed); /* grown or full: start again (entries are only a shortcut) */
        d->failed = t;
        d->failed_cap = cap;
        d->failed_n = 0;
    }
    struct failed *x = failed_slot(d, f->key);
    if (!x) return;
    if (!x->key[0]) d->failed_n++;
    memcpy(x->key, f->key, 33);
    x->m = f->m;
    x->code = code;
    snprintf(x->msg, sizeof x->msg, "%s", msg ? msg : "failed");
}

/* Forgets the final failures of model m (open addressing: rebuilt without them). */
static void failed_forget(ss_dispatch_t *d, model_t *m)
{
    size_t cap = d->failed_cap;
    struct failed *old = d->failed, *t = cap ? calloc(cap, sizeof *t) : NULL;
    if (!t) return;
    d->failed = t;
    d->failed_n = 0;
    for (size_t i = 0; i < cap; i++)
        if (old[i].key[0] && old[i].m != m) {
            struct failed *x = failed_slot(d, old[i].key);
            *x = old[i];
            d->failed_n++;
        }
    free(old);
}

/* ---------------------------------------------------------------- key table (d->mu held) */

/* Keys are hex digests already: their first 16 digits make a good bucket hash. */
static size_t fl_bucket(const char *key, size_t cap)
{
    uint64_t h = 0;
    for (int i = 0; i < 16 && key[i]; i++) h = h * 16 + (uint64_t)(key[i] <= '9' ? key[i] - '0' : key[i] - 'a' + 10);
    return (size_t)h & (cap - 1);
}

static inflight_t *fl_find(ss_dispatch_t *d, const char *key)
{
    if (!d->fl_cap) return NULL;
    for (inflight_t *f = d->fl_tab[fl_bucket(key, d->fl_cap)]; f; f = f->next)
        if (!strcmp(f->key, key)) return f;
    return NULL;
}

/* Links f in, doubling the table when it gets as full as it has buckets. 0 or -1 (no memory). */
static int fl_insert(ss_dispatch_t *d, inflight_t *f)
{
    if (d->fl_n + 1 > d->fl_cap) {
        size_t cap = d->fl_cap ? d->fl_cap * 2 : 256;
        inflight_t **t = calloc(cap, sizeof *t);
        if (!t) return -1;
        for (size_t i = 0; i < d->fl_cap; i++)
            while (d->fl_tab[i]) {
                inflight_t *g = d->fl_tab[i];
                d->fl_tab[i] = g->next;
                size_t b = fl_bucket(g->key, cap);
                g->next = t[b];
                t[b] = g;
            }
        free(d->fl_tab);
        d->fl_tab = t;
        d->fl_cap = cap;
    }
    size_t b = fl_bucket(f->key, d->fl_cap);
    f->next = d->fl_tab[b];
    d->fl_tab[b] = f;
    d->fl_n++;
    return 0;
}

static void fl_unlink(ss_dispatch_t *d, inflight_t *f)
{
    for (inflight_t **pp = &d->fl_tab[fl_bucket(f->key, d->fl_cap)]; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            d->fl_n--;
            return;
        }
}

static void queue_push(model_t *m, inflight_t *f)
{
    f->state = FL_QUEUED;
    f->qnext = NULL;
    if (m->qtail) m->qtail->qnext = f;
    else m->qhead = f;
    m->qtail = f;
    m->queued++;
}

/* ---------------------------------------------------------------- wait groups */

int ss_dispatch_wg_new(ss_dispatch_t *d, ss_dispatch_wg_t **out, char *err, size_t errsz)
{
    ss_dispatch_wg_t *g = calloc(1, sizeof *g);
    if (!g) return ss_seterr(err, errsz, SS_ERR_NOMEM, "dispatcher: out of memory");
    g->d = d;
    pthread_cond_init(&g->cv, NULL);
    pthread_mutex_lock(&d->mu);
    g->next = d->wgs;
    d->wgs = g;
    pthread_mutex_unlock(&d->mu);
    *out = g;
    return SS_OK;
}

static void wg_drop_from(inflight_t *f, ss_dispatch_wg_t *g)
{
    for (int i = 0; i < f->nwg; i++)
        if (f->wgs[i] == g) {
            f->wgs[i] = f->wgs[--f->nwg];
            return;
        }
}

void ss_dispatch_wg_destroy(ss_dispatch_wg_t *g)
{
    if (!g) return;
    if (tl_wg == g) tl_wg = NULL;
    ss_dispatch_t *d = g->d;
    if (d) {
        pthread_mutex_lock(&d->mu);
        for (size_t i = 0; i < d->fl_cap; i++)
            for (inflight_t *f = d->fl_tab[i]; f; f = f->next) wg_drop_from(f, g);
        for (ss_dispatch_wg_t **pp = &d->wgs; *pp; pp = &(*pp)->next)
            if (*pp == g) {
                *pp = g->next;
                break;
            }
        pthread_mutex_unlock(&d->mu);
    }
    pthread_cond_destroy(&g->cv);
    free(g->paid);
    free(g);
}

void ss_dispatch_bind(ss_dispatch_wg_t *wg) { tl_wg = wg; }

void ss_dispatch_wg_status(ss_dispatch_wg_t *g, ss_dispatch_wg_status_t *out)
{
    pthread_mutex_lock(&g->d->mu);
    out->outstanding = g->outstanding;
    out->completed = g->completed;
    out->registered = g->registered;
    memcpy(out->model, g->model, sizeof out->model);
    pthread_mutex_unlock(&g->d->mu);
}

void ss_dispatch_wg_wait(ss_dispatch_wg_t *g, int want_completed, int timeout_ms)
{
    ss_dispatch_t *d = g->d;
    struct timespec ts;
    if (timeout_ms >= 0) ss_deadline(&ts, CLOCK_REALTIME, timeout_ms);
    pthread_mutex_lock(&d->mu);
    while (g->outstanding > 0 && g->completed < SS_MAX(1, want_completed) && !g->woken) {
        if (timeout_ms < 0) pthread_cond_wait(&g->cv, &d->mu);
        else if (pthread_cond_timedwait(&g->cv, &d->mu, &ts) == ETIMEDOUT) break;
    }
    g->woken = 0;
    pthread_mutex_unlock(&d->mu);
}

void ss_dispatch_wg_rearm(ss_dispatch_wg_t *g)
{
    pthread_mutex_lock(&g->d->mu);
    g->completed = 0;
    g->registered = 0;
    pthread_mutex_unlock(&g->d->mu);
}

void ss_dispatch_wg_forget(ss_dispatch_wg_t *g)
{
    pthread_mutex_lock(&g->d->mu);
    g->npaid = 0;
    pthread_mutex_unlock(&g->d->mu);
}

void ss_dispatch_wg_wake(ss_dispatch_wg_t *g)
{
    pthread_mutex_lock(&g->d->mu);
    g->woken = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->d->mu);
}

/* Registers g on f (d->mu held). */
static void wg_register(ss_dispatch_wg_t *g, inflight_t *f)
{
    for (int i = 0; i < f->nwg; i++)
        if (f->wgs[i] == g) return;
    if (f->nwg == f->capwg) {
        int cap = f->capwg ? f->capwg * 2 : 2;
        ss_dispatch_wg_t **w = realloc(f->wgs, (size_t)cap * sizeof *w);
        if (!w) return; /* the group then wakes on its timeout and looks again */
        f->wgs = w;
        f->capwg = cap;
    }
    f->wgs[f->nwg++] = g;
    g->outstanding++;
    g->registered++;
    snprintf(g->model, sizeof g->model, "%s", f->m->name);
}

static int wg_paid(const ss_dispatch_wg_t *g, const char *key)
{
    for (int i = 0; i < g->npaid; i++)
        if (!memcmp(g->paid[i], key, 33)) return 1;
    return 0;
}

static void wg_note_paid(ss_dispatch_wg_t *g, const char *key)
{
    if (wg_paid(g, key)) return;
    if (g->npaid == g->cappaid) {
        int cap = g->cappaid ? g->cappaid * 2 : 64;
        char(*p)[33] = realloc(g->paid, (size_t)cap * sizeof *p);
        if (!p) return; /* then counted as a cache hit: accounting only */
        g->paid = p;
        g->cappaid = cap;
    }
    memcpy(g->paid[g->npaid++], key, 33);
}

/* ---------------------------------------------------------------- workers */

/* Exponential backoff with jitter: 250 ms doubling to 30 s, each drawn in [1/2, 1] of its value. */
static int64_t backoff_ms(int attempts, int retry_after_ms, uint64_t *rng)
{
    int64_t b = BACKOFF_FIRST_MS;
    for (int i = 1; i < attempts && b < BACKOFF_MAX_MS; i++) b *= 2;
    b = SS_MIN(b, BACKOFF_MAX_MS);
    *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
    b = b / 2 + (int64_t)((*rng >> 33) % (uint64_t)(b / 2 + 1));
    return SS_MAX(b, (int64_t)retry_after_ms);
}

/* Takes up to max ready entries from the queue head onwards (d->mu held). */
static int take_ready(model_t *m, inflight_t **out, int max, int64_t now, int64_t *next_ns)
{
    int n = 0;
    *next_ns = 0;
    inflight_t *prev = NULL, *f = m->qhead;
    while (f && n < max) {
        inflight_t *nx = f->qnext;
        if (f->not_before_ns > now) {
            if (!*next_ns || f->not_before_ns < *next_ns) *next_ns = f->not_before_ns;
            prev = f;
        } else {
            if (prev) prev->qnext = nx;
            else m->qhead = nx;
            if (m->qtail == f) m->qtail = prev;
            f->state = FL_RUNNING;
            m->queued--;
            out[n++] = f;
        }
        f = nx;
    }
    return n;
}

/* An entry is answered or has failed for good (d->mu held): out of the table, its
 * groups told, blocking waiters woken. res is moved into the entry. */
static void finalize(ss_dispatch_t *d, inflight_t *f, ss_infer_res_t *res)
{
    fl_unlink(d, f);
    f->state = FL_DONE;
    for (int i = 0; i < f->nwg; i++) {
        ss_dispatch_wg_t *g = f->wgs[i];
        g->outstanding--;
        g->completed++;
        pthread_cond_broadcast(&g->cv);
    }
    f->nwg = 0;
    if (f->waiters > 0) {
        f->res = *res;
        memset(res, 0, sizeof *res);
    } else {
        ss_infer_res_clear(res);
        entry_free(f);
    }
}

/* The model failed an attempt: its state, logged when it starts failing and then
 * every 30 s while it goes on (d->mu held). */
static void note_failure(model_t *m, int code, const char *msg, int64_t retry_ms, int nwaiting)
{
    int64_t now = ss_now_ns();
    m->failures++;
    m->last_code = code;
    snprintf(m->last_error, sizeof m->last_error, "%s", msg ? msg : "failed");
    m->next_retry_ms = ss_wall_ms() + retry_ms;
    if (!m->failing) {
        m->failing = 1;
        m->failing_since_ms = ss_wall_ms();
        m->failing_since_ns = now;
        m->last_fail_log_ns = now;
        ss_log(SS_LOG_WARN, "dispatch", "model %s failing: %s; retrying in %.1f s (%d requests waiting)", m->name,
               m->last_error, retry_ms / 1000.0, nwaiting);
    } else if (now - m->last_fail_log_ns >= FAIL_LOG_EVERY_NS) {
        m->last_fail_log_ns = now;
        ss_log(SS_LOG_WARN, "dispatch", "model %s still failing after %.0f s: %s; next retry in %.1f s", m->name,
               (now - m->failing_since_ns) / 1e9, m->last_error, retry_ms / 1000.0);
    }
}

static void note_success(model_t *m)
{
    if (!m->failing) return;
    ss_log(SS_LOG_WARN, "dispatch", "model %s answering again after %.1f s of failures", m->name,
           (ss_now_ns() - m->failing_since_ns) / 1e9);
    m->failing = 0;
    m->next_retry_ms = 0;
}

/* Runs one chunk on the backend (d->mu NOT held) and stores its successes in the cache. */
static void run_chunk(model_t *m, inflight_t **fs, int n, ss_infer_res_t *out)
{
    ss_dispatch_t *d = m->d;
    ss_infer_req_t *cr = malloc((size_t)n * sizeof *cr);
    ss_cache_entry_t *ce = malloc((size_t)n * sizeof *ce);
    char err[SS_ERRSZ] = "";
    int rc = cr && ce ? SS_OK : ss_seterr(err, sizeof err, SS_ERR_NOMEM, "dispatcher: out of memory");
    if (rc == SS_OK) {
        for (int i = 0; i < n; i++) cr[i] = fs[i]->req;
        rc = m->b->run(m->b, cr, n, out, err, sizeof err);
    }
    int nok = 0;
    for (int i = 0; i < n; i++) {
        if (rc != SS_OK) ss_infer_res_fail(&out[i], rc, err);
        else if (out[i].status != SS_OK && !out[i].error)
            ss_infer_res_fail(&out[i], out[i].status, "backend failed without a message");
        out[i].cached = 0;
        if (out[i].status == SS_OK && ce) ce[nok++] = (ss_cache_entry_t){fs[i]->key, fs[i]->req.kind, &out[i]};
    }
    if (nok && d->cache) {
        char cerr[SS_ERRSZ];
        if (ss_cache_put(d->cache, m->b->model_id, ce, nok, cerr, sizeof cerr) != SS_OK)
            ss_log(SS_LOG_WARN, "dispatch", "%s (results kept in memory only)", cerr);
    }
    free(cr);
    free(ce);
}

/* After a chunk (d->mu held): successes and final failures end their entries; failures
 * that non-blocking callers wait for go back to the queue after a backoff. */
static void settle_chunk(model_t *m, inflight_t **fs, int n, ss_infer_res_t *out, uint64_t *rng)
{
    ss_dispatch_t *d = m->d;
    int64_t now = ss_now_ns();
    /* the chunk's retries wait out one backoff together, so they travel together again */
    int attempts = 0, retry_after = 0;
    for (int i = 0; i < n; i++)
        if (out[i].status != SS_OK && fs[i]->retry && !ss_dispatch_err_final(out[i].status)) {
            attempts = SS_MAX(attempts, fs[i]->attempts + 1);
            retry_after = SS_MAX(retry_after, out[i].retry_after_ms);
        }
    int64_t wait = attempts ? backoff_ms(attempts, retry_after, rng) : 0;
    for (int i = 0; i < n; i++) {
        inflight_t *f = fs[i];
        d->totals.calls++;
        d->totals.prompt_tokens += out[i].prompt_tokens;
        d->totals.gen_tokens += out[i].gen_tokens;
        if (out[i].status == SS_OK) {
            m->calls++;
            note_success(m);
            finalize(d, f, &out[i]);
        } else if (f->retry && !d->stopping && !ss_dispatch_err_final(out[i].status)) {
            f->attempts++;
            note_failure(m, out[i].status, out[i].error, wait, m->queued + n - i);
            ss_infer_res_clear(&out[i]);
            f->not_before_ns = now + wait * 1000000LL;
            queue_push(m, f);
        } else { /* the failure is the answer (a blocking caller's, or one retrying cannot mend) */
            m->failures++;
            m->last_code = out[i].status;
            snprintf(m->last_error, sizeof m->last_error, "%s", out[i].error ? out[i].error : "failed");
            if (ss_dispatch_err_final(out[i].status)) failed_note(d, f, out[i].status, out[i].error);
            finalize(d, f, &out[i]);
        }
    }
    account_load(d);
    m->inflight -= n;
    d->inflight -= n;
    if (m->inflight == 0) m->busy_ns += ss_now_ns() - m->busy_since_ns;
    if (d->inflight == 0) d->busy_ns += ss_now_ns() - d->busy_since_ns;
    pthread_cond_broadcast(&d->cv);
    pthread_cond_broadcast(&m->cv);
}

static void *worker_main(void *arg)
{
    model_t *m = arg;
    ss_dispatch_t *d = m->d;
    int max = d->max_batch;
    inflight_t **fs = malloc((size_t)max * sizeof *fs);
    ss_infer_res_t *out = calloc((size_t)max, sizeof *out);
    uint64_t rng = (uint64_t)ss_now_ns() ^ (uint64_t)(uintptr_t)&rng;
    if (!fs || !out) {
        free(fs);
        free(out);
        return NULL;
    }
    pthread_mutex_lock(&d->mu);
    while (!d->stopping) {
        int room = m->swapping ? 0 : SS_MIN(max, m->capacity - m->inflight);
        int64_t next = 0;
        int n = room > 0 ? take_ready(m, fs, room, ss_now_ns(), &next) : 0;
        if (n == 0) {
            if (next) {
                struct timespec ts;
                ss_deadline(&ts, CLOCK_REALTIME, SS_MAX(1, (next - ss_now_ns()) / 1000000 + 1));
                pthread_cond_timedwait(&m->cv, &d->mu, &ts);
            } else {
                pthread_cond_wait(&m->cv, &d->mu);
            }
            continue;
        }
        if (m->inflight == 0) m->busy_since_ns = ss_now_ns();
        if (d->inflight == 0) d->busy_since_ns = ss_now_ns();
        account_load(d);
        m->inflight += n;
        d->inflight += n;
        pthread_mutex_unlock(&d->mu);
        int64_t t0 = ss_now_ns();
        run_chunk(m, fs, n, out);
        double secs = (ss_now_ns() - t0) / 1e9;
        pthread_mutex_lock(&d->mu);
        int b = 0; /* the call's latency bucket, for /metrics */
        while (b < SS_DISPATCH_LAT_NB - 1 && secs > ss_dispatch_lat_bounds[b])
            b++;
        m->lat_hist[b]++;
        m->lat_count++;
        m->lat_sum_s += secs;
        settle_chunk(m, fs, n, out, &rng);
    }
    pthread_mutex_unlock(&d->mu);
    free(fs);
    free(out);
    return NULL;
}

/* ---------------------------------------------------------------- submitting */

typedef struct keyed {
    const char *key;
    int idx;
} keyed_t;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

typedef struct pref {
    const ss_infer_req_t *r;
    int idx; /* slot index */
} pref_t;

static int cmp_prefix(const void *a, const void *b)
{
    const pref_t *x = a, *y = b;
    size_t lx = x->r->prompt ? SS_MIN(x->r->prefix_len, strlen(x->r->prompt)) : 0;
    size_t ly = y->r->prompt ? SS_MIN(y->r->prefix_len, strlen(y->r->prompt)) : 0;
    int c = memcmp(x->r->prompt ? x->r->prompt : "", y->r->prompt ? y->r->prompt : "", SS_MIN(lx, ly));
    if (!c) c = (lx > ly) - (lx < ly);
    return c ? c : (x->r > y->r) - (x->r < y->r); /* request order within a prefix */
}

/* What one distinct key of the batch turned into. */
typedef enum { SLOT_NEW, SLOT_JOIN, SLOT_HIT, SLOT_FAILED, SLOT_REFUSED } slot_how_t; /* REFUSED: a final
                                    failure of this request is remembered (its result holds it) */

typedef struct slot {
    int first;          /* index of the first request with this key */
    slot_how_t how;
    inflight_t *fl;     /* SLOT_NEW / SLOT_JOIN */
} slot_t;

/* Sorts request indices by key and builds one slot per distinct key; dup[i] = slot of i. */
static int fold_batch(char (*keys)[33], int n, slot_t *slots, int *dup)
{
    keyed_t *k = malloc((size_t)n * sizeof *k);
    if (!k) return -1;
    for (int i = 0; i < n; i++) k[i] = (keyed_t){keys[i], i};
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
    int ns = 0;
    for (int i = 0; i < n; i++) {
        if (i == 0 || strcmp(k[i].key, k[i - 1].key)) slots[ns++] = (slot_t){k[i].idx, SLOT_NEW, NULL};
        dup[k[i].idx] = ns - 1;
    }
    free(k);
    return ns;
}

/* A queued copy of request r (d->mu held or not: touches nothing shared). */
static inflight_t *entry_new(model_t *m, const char *key, const ss_infer_req_t *r)
{
    inflight_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    memcpy(f->key, key, 33);
    f->m = m;
    f->req = *r;
    f->req.prompt = ss_strdup(r->prompt ? r->prompt : "");
    f->req.json_schema = r->json_schema ? ss_strdup(r->json_schema) : NULL;
    f->req.stop = r->stop ? ss_strdup(r->stop) : NULL;
    f->req.choices = NULL;
    f->req.stops = NULL;
    f->req.on_token = NULL; /* an observer of the caller's, which may return before the answer */
    f->req.on_token_ctx = NULL;
    int bad = !f->req.prompt || (r->stop && !f->req.stop);
    if (r->nstop > 0 && r->stops) {
        const char **x = calloc((size_t)r->nstop, sizeof *x);
        f->req.stops = x;
        for (int i = 0; x && i < r->nstop; i++)
            if (!(x[i] = ss_strdup(r->stops[i] ? r->stops[i] : ""))) bad = 1;
        if (!x) bad = 1;
    }
    if (r->nchoices > 0 && r->choices) {
        const char **c = calloc((size_t)r->nchoices, sizeof *c);
        f->req.choices = c;
        for (int i = 0; c && i < r->nchoices; i++)
            if (!(c[i] = ss_strdup(r->choices[i] ? r->choices[i] : ""))) bad = 1;
        if (!c) bad = 1;
    }
    if (r->json_schema && !f->req.json_schema) bad = 1;
    if (bad) {
        f->req.nchoices = f->req.choices ? r->nchoices : 0;
        entry_free(f);
        return NULL;
    }
    return f;
}

/* Resolves each distinct key under d->mu: joins an entry queued or running, or reads
 * the cache, or queues a new entry (in prefix order). A cache read error only costs a
 * recomputation; an allocation failure fails the slot. */
static void classify(ss_dispatch_t *d, model_t *m, const ss_infer_req_t *reqs, slot_t *slots, int ns,
                     char (*keys)[33], ss_infer_res_t *res, ss_dispatch_wg_t *wg, ss_infer_stats_t *st)
{
    char err[SS_ERRSZ];
    const char **mk = malloc((size_t)ns * sizeof *mk);
    ss_infer_res_t **mr = malloc((size_t)ns * sizeof *mr);
    int *ms = malloc((size_t)ns * sizeof *ms), *found = calloc((size_t)ns, sizeof *found), nm = 0;
    pref_t *order = malloc((size_t)ns * sizeof *order);
    int no = 0;
    pthread_mutex_lock(&d->mu);
    for (int s = 0; s < ns; s++) {
        inflight_t *f = fl_find(d, keys[slots[s].first]);
        const struct failed *x = f ? NULL : failed_find(d, keys[slots[s].first]);
        if (f) {
            slots[s].how = SLOT_JOIN;
            slots[s].fl = f;
        } else if (x) { /* it failed for good before: the same answer, no new call */
            slots[s].how = SLOT_REFUSED;
            ss_infer_res_fail(&res[slots[s].first], x->code, x->msg);
        } else if (mk && mr && ms && found) {
            mk[nm] = keys[slots[s].first];
            mr[nm] = &res[slots[s].first];
            ms[nm++] = s;
        } else {
            slots[s].how = SLOT_FAILED;
        }
    }
    if (d->cache && nm && ss_cache_get_many(d->cache, mk, nm, mr, found, err, sizeof err))
        ss_log(SS_LOG_WARN, "dispatch", "%s (recomputing)", err);
    for (int i = 0; i < nm; i++) {
        slot_t *sl = &slots[ms[i]];
        if (found[i]) {
            sl->how = SLOT_HIT;
            if (wg && wg_paid(wg, mk[i])) {
                st->calls++;
                st->prompt_tokens += res[sl->first].prompt_tokens;
                st->gen_tokens += res[sl->first].gen_tokens;
                res[sl->first].cached = 0;
            } else {
                st->cache_hits++;
            }
            continue;
        }
        if (order) order[no++] = (pref_t){&reqs[sl->first], ms[i]};
        else sl->how = SLOT_FAILED;
    }
    if (order) qsort(order, (size_t)no, sizeof *order, cmp_prefix);
    for (int i = 0; i < no; i++) {
        slot_t *sl = &slots[order[i].idx];
        inflight_t *f = entry_new(m, keys[sl->first], &reqs[sl->first]);
        if (!f || fl_insert(d, f) != 0) {
            if (f) entry_free(f);
            sl->how = SLOT_FAILED;
            continue;
        }
        f->retry = wg != NULL;
        queue_push(m, f);
        sl->how = SLOT_NEW;
        sl->fl = f;
        if (wg) wg_note_paid(wg, f->key);
    }
    for (int s = 0; s < ns; s++) {
        inflight_t *f = slots[s].fl;
        if (!f) continue;
        if (wg) {
            f->retry = 1;
            wg_register(wg, f);
        } else {
            f->waiters++;
        }
    }
    if (no) {
        start_workers(m);
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&d->mu);
    free(mk);
    free(mr);
    free(ms);
    free(found);
    free(order);
}

/* Blocking: waits for the slots' entries and copies their results. */
static void wait_for(ss_dispatch_t *d, slot_t *slots, int ns, ss_infer_res_t *res, ss_infer_stats_t *st)
{
    pthread_mutex_lock(&d->mu);
    for (int s = 0; s < ns; s++) {
        inflight_t *f = slots[s].fl;
        if (!f) continue;
        while (f->state != FL_DONE) pthread_cond_wait(&d->cv, &d->mu);
        ss_infer_res_t *dst = &res[slots[s].first];
        if (ss_infer_res_copy(dst, &f->res) != SS_OK) ss_infer_res_fail(dst, SS_ERR_NOMEM, "dispatcher: out of memory");
        if (slots[s].how == SLOT_NEW) {
            st->calls++;
            st->prompt_tokens += dst->prompt_tokens;
            st->gen_tokens += dst->gen_tokens;
        }
        if (--f->waiters == 0) entry_free(f);
        slots[s].fl = NULL;
    }
    pthread_mutex_unlock(&d->mu);
}

/* What tells request r apart from its neighbours, for an error: its prompt after the shared
 * prefix (the row's part), newlines as spaces, at most outsz - 4 bytes then "...". */
static void excerpt(const ss_infer_req_t *r, char *out, size_t outsz)
{
    const char *p = r->prompt ? r->prompt : "";
    size_t len = strlen(p), from = r->prefix_len < len ? r->prefix_len : 0, k = 0;
    while (from < len && (p[from] == ' ' || p[from] == '\n'))
        from++;
    for (; from < len && k + 4 < outsz; from++)
        out[k++] = p[from] == '\n' || p[from] == '\r' || p[from] == '\t' ? ' ' : p[from];
    if (from < len)
        memcpy(out + k, "...", 3), k += 3;
    out[k] = 0;
}

static int finish(const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, const slot_t *slots, const int *dup,
                  char *err, size_t errsz)
{
    int rc = SS_OK, pending = 0;
    for (int i = 0; i < n; i++) {
        const slot_t *s = &slots[dup[i]];
        if (s->how == SLOT_FAILED && s->first == i)
            ss_infer_res_fail(&res[i], SS_ERR_NOMEM, "dispatcher: out of memory");
        if (s->fl) { /* non-blocking: on its way */
            res[i].status = SS_ERR_PENDING;
            pending = 1;
            continue;
        }
        if (s->first != i && ss_infer_res_copy(&res[i], &res[s->first]) != SS_OK)
            ss_infer_res_fail(&res[i], SS_ERR_NOMEM, "dispatcher: out of memory");
        if (res[i].status != SS_OK && rc == SS_OK) { /* which request: its kind and its row's part */
            char what[96];
            excerpt(&reqs[i], what, sizeof what);
            rc = ss_seterr(err, errsz, (ss_err_t)res[i].status, "request %d (%s of \"%s\"): %s", i,
                           ss_infer_kind_name(reqs[i].kind), what, res[i].error ? res[i].error : "failed");
        }
    }
    if (rc == SS_OK && pending) rc = ss_seterr(err, errsz, SS_ERR_PENDING, "answers pending");
    return rc;
}

static void account(ss_dispatch_t *d, ss_infer_stats_t *acct, const ss_infer_stats_t *st, int blocking)
{
    pthread_mutex_lock(&d->mu);
    if (blocking) {
        d->totals.requests += st->requests;
        d->totals.cache_hits += st->cache_hits;
        d->totals.ns += st->ns;
    }
    if (acct) {
        acct->requests += st->requests;
        acct->calls += st->calls;
        acct->cache_hits += st->cache_hits;
        acct->prompt_tokens += st->prompt_tokens;
        acct->gen_tokens += st->gen_tokens;
        acct->ns += st->ns;
    }
    pthread_mutex_unlock(&d->mu);
}

int ss_dispatch_run(ss_dispatch_t *d, const char *model, ss_infer_stats_t *acct,
                    const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err, size_t errsz)
{
    if (n <= 0) return SS_OK;
    ss_dispatch_wg_t *wg = tl_wg && tl_wg->d == d ? tl_wg : NULL;
    if (wg && !d->cache)
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "dispatcher: non-blocking calls need the result cache");
    int64_t t0 = ss_now_ns();
    pthread_mutex_lock(&d->mu);
    int mi = find_model(d, model);
    model_t *m = mi >= 0 ? d->models[mi] : NULL;
    pthread_mutex_unlock(&d->mu);
    if (!m)
        return ss_seterr(err, errsz, SS_ERR_NOTFOUND, "dispatcher: no model %s%s",
                         model ? "named " : "registered", model ? model : "");
    char (*keys)[33] = malloc((size_t)n * sizeof *keys);
    slot_t *slots = malloc((size_t)n * sizeof *slots);
    int *dup = malloc((size_t)n * sizeof *dup);
    int rc = SS_OK, ns = 0;
    ss_infer_stats_t st = {0};
    st.requests = n;
    if (!keys || !slots || !dup) {
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "dispatcher: out of memory");
        goto out;
    }
    for (int i = 0; i < n && rc == SS_OK; i++)
        if (ss_infer_key(m->b->model_id, &reqs[i], keys[i]) != SS_OK)
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "dispatcher: out of memory");
    if (rc != SS_OK) goto out;
    ns = fold_batch(keys, n, slots, dup);
    if (ns < 0) {
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "dispatcher: out of memory");
        goto out;
    }
    classify(d, m, reqs, slots, ns, keys, res, wg, &st);
    if (!wg) wait_for(d, slots, ns, res, &st);
    rc = finish(reqs, n, res, slots, dup, err, errsz);
out:
    st.ns = ss_now_ns() - t0;
    account(d, acct, &st, wg == NULL);
    free(keys);
    free(slots);
    free(dup);
    return rc;
}
