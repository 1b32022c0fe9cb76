/*
 * dispatch.c — the inference dispatcher (ss_dispatch.h).
 *
 * Owns the registered backends, the result cache (runtime/cache.c) and the table
 * of requests in flight. ss_dispatch_run, for one batch:
 *   1. computes every request's key (ss_infer_key: model_id + kind + prompt +
 *      choices + decoding parameters) and folds identical requests of the batch;
 *   2. under the dispatcher mutex, per distinct key: joins a request already in
 *      flight from another caller (waits for it), or answers from the cache, or
 *      registers itself as the owner of a new in-flight entry;
 *   3. sorts its owned requests by shared prefix (prompt[0..prefix_len)) so
 *      requests of one operator travel together, and sends them to the backend in
 *      chunks of max_batch (one chunk at a time per backend: backends need not be
 *      thread-safe);
 *   4. as each chunk returns, commits its successful results to the cache in one
 *      durable transaction, then publishes them to waiters;
 *   5. fills res[] in request order and accounts to the caller and the totals.
 * A result reaches the cache before its in-flight entry disappears, so a caller
 * holding the mutex always finds a request either in flight or in the cache.
 */
#include "ss_cache.h"
#include "ss_dispatch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct model {
    char *name;
    ss_infer_backend_t *b;
    pthread_mutex_t run_mu; /* one backend call at a time */
} model_t;

/* A request being computed by some caller; others with the same key wait on it. */
typedef struct inflight {
    char key[33];
    int done;          /* res is final */
    int refs;          /* owner + waiters still to copy res */
    ss_infer_res_t res;
    struct inflight *next;
} inflight_t;

struct ss_dispatch {
    pthread_mutex_t mu;   /* guards everything below except model run calls */
    pthread_cond_t cv;    /* broadcast when an in-flight entry is done */
    ss_cache_t *cache;    /* NULL: no persistent cache */
    int max_batch;
    model_t **models;     /* stable pointers: a running call keeps its model_t */
    int nmodels, def;
    inflight_t **fl_tab;  /* in-flight requests: hash table of chains, fl_cap buckets */
    size_t fl_cap, fl_n;
    ss_infer_stats_t totals;
};

/* What one distinct key of the batch turned into. */
typedef enum { SLOT_OWN, SLOT_WAIT, SLOT_HIT } slot_how_t;

typedef struct slot {
    int first;          /* index of the first request with this key */
    slot_how_t how;
    inflight_t *fl;     /* SLOT_OWN / SLOT_WAIT */
} slot_t;

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

void ss_dispatch_close(ss_dispatch_t *d)
{
    if (!d) return;
    for (int i = 0; i < d->nmodels; i++) {
        model_t *m = d->models[i];
        if (m->b && m->b->destroy) m->b->destroy(m->b);
        free(m->name);
        pthread_mutex_destroy(&m->run_mu);
        free(m);
    }
    free(d->models);
    for (size_t i = 0; i < d->fl_cap; i++) /* entries left only if a caller still runs: a misuse */
        while (d->fl_tab[i]) {
            inflight_t *f = d->fl_tab[i];
            d->fl_tab[i] = f->next;
            ss_infer_res_clear(&f->res);
            free(f);
        }
    free(d->fl_tab);
    ss_cache_close(d->cache);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static int find_model(ss_dispatch_t *d, const char *name)
{
    if (!name) return d->def;
    for (int i = 0; i < d->nmodels; i++)
        if (!strcmp(d->models[i]->name, name)) return i;
    return -1;
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
        if (!ms || !m || !(m->name = ss_strdup(name))) {
            free(m);
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "dispatcher: out of memory");
        } else {
            d->models[d->nmodels] = m;
            m->b = b;
            pthread_mutex_init(&m->run_mu, NULL);
            if (d->def < 0 || is_default) d->def = d->nmodels;
            d->nmodels++;
            b = NULL;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (b && b->destroy) b->destroy(b); /* ownership taken even on failure */
    return rc;
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

/* ---- sorting helpers ---- */

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

/* ---- in-flight table (d->mu held) ---- */

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

static void fl_release(ss_dispatch_t *d, inflight_t *f)
{
    if (--f->refs > 0) return;
    for (inflight_t **pp = &d->fl_tab[fl_bucket(f->key, d->fl_cap)]; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            d->fl_n--;
            break;
        }
    ss_infer_res_clear(&f->res);
    free(f);
}

/* Resolves each distinct key: in flight elsewhere, cached, or owned by us. A cache
 * read error or a full memory only costs a recomputation, never the request. */
static void classify(ss_dispatch_t *d, slot_t *slots, int ns, char (*keys)[33],
                     ss_infer_res_t *res, ss_infer_stats_t *st)
{
    char err[SS_ERRSZ];
    const char **mk = malloc((size_t)ns * sizeof *mk);
    ss_infer_res_t **mr = malloc((size_t)ns * sizeof *mr);
    int *ms = malloc((size_t)ns * sizeof *ms), *found = calloc((size_t)ns, sizeof *found), nm = 0;
    pthread_mutex_lock(&d->mu);
    for (int s = 0; s < ns; s++) {
        inflight_t *f = fl_find(d, keys[slots[s].first]);
        if (f) {
            f->refs++;
            slots[s].how = SLOT_WAIT;
            slots[s].fl = f;
        } else if (mk && mr && ms && found) {
            mk[nm] = keys[slots[s].first];
            mr[nm] = &res[slots[s].first];
            ms[nm++] = s;
        } else {
            slots[s].how = SLOT_OWN; /* no memory for the lookup lists: recompute */
            slots[s].fl = NULL;
        }
    }
    if (d->cache && nm && ss_cache_get_many(d->cache, mk, nm, mr, found, err, sizeof err))
        ss_log(SS_LOG_WARN, "dispatch", "%s (recomputing)", err);
    for (int i = 0; i < nm; i++) {
        slot_t *sl = &slots[ms[i]];
        if (found[i]) {
            sl->how = SLOT_HIT;
            st->cache_hits++;
            continue;
        }
        sl->how = SLOT_OWN;
        inflight_t *f = calloc(1, sizeof *f); /* NULL: run unshared */
        if (f) {
            memcpy(f->key, mk[i], 33);
            f->refs = 1;
            if (fl_insert(d, f) != 0) {
                free(f);
                f = NULL;
            }
        }
        sl->fl = f;
    }
    pthread_mutex_unlock(&d->mu);
    free(mk);
    free(mr);
    free(ms);
    free(found);
}

/* Runs one chunk of owned slots on the backend, stores and publishes the results. */
static void run_chunk(ss_dispatch_t *d, model_t *m, const ss_infer_req_t *reqs, char (*keys)[33],
                      slot_t *slots, const pref_t *order, int n, ss_infer_res_t *res,
                      ss_infer_stats_t *st)
{
    ss_infer_req_t *cr = malloc((size_t)n * sizeof *cr);
    ss_infer_res_t *out = calloc((size_t)n, sizeof *out);
    ss_cache_entry_t *ce = malloc((size_t)n * sizeof *ce);
    char err[SS_ERRSZ] = "";
    int rc = (cr && out && ce) ? SS_OK : ss_seterr(err, sizeof err, SS_ERR_NOMEM, "dispatcher: out of memory");
    if (rc == SS_OK) {
        for (int i = 0; i < n; i++) cr[i] = reqs[slots[order[i].idx].first];
        pthread_mutex_lock(&m->run_mu);
        rc = m->b->run(m->b, cr, n, out, err, sizeof err);
        pthread_mutex_unlock(&m->run_mu);
    }
    for (int i = 0; out && i < n; i++) {
        if (rc != SS_OK) ss_infer_res_fail(&out[i], rc, err);
        else if (out[i].status != SS_OK && !out[i].error)
            ss_infer_res_fail(&out[i], out[i].status, "backend failed without a message");
        out[i].cached = 0;
        st->calls++;
        st->prompt_tokens += out[i].prompt_tokens;
        st->gen_tokens += out[i].gen_tokens;
        ce[i] = (ss_cache_entry_t){keys[slots[order[i].idx].first], cr[i].kind, &out[i]};
    }
    if (rc == SS_OK && d->cache) {
        char cerr[SS_ERRSZ];
        if (ss_cache_put(d->cache, m->b->model_id, ce, n, cerr, sizeof cerr) != SS_OK)
            ss_log(SS_LOG_WARN, "dispatch", "%s (results kept in memory only)", cerr);
    }
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < n; i++) {
        slot_t *s = &slots[order[i].idx];
        ss_infer_res_t *dst = &res[s->first];
        if (out) {
            *dst = out[i]; /* ownership moves to the caller's result */
            memset(&out[i], 0, sizeof out[i]);
        } else {
            ss_infer_res_fail(dst, SS_ERR_NOMEM, "dispatcher: out of memory");
        }
        if (!s->fl) continue;
        if (s->fl->refs > 1 && ss_infer_res_copy(&s->fl->res, dst) != SS_OK) /* only waiters read it */
            ss_infer_res_fail(&s->fl->res, SS_ERR_NOMEM, "dispatcher: out of memory");
        s->fl->done = 1;
        fl_release(d, s->fl);
        s->fl = NULL;
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    free(cr);
    free(out);
    free(ce);
}

static void run_owned(ss_dispatch_t *d, model_t *m, const ss_infer_req_t *reqs, char (*keys)[33],
                      slot_t *slots, int ns, ss_infer_res_t *res, ss_infer_stats_t *st)
{
    pref_t *order = malloc((size_t)ns * sizeof *order);
    int no = 0;
    for (int s = 0; s < ns; s++)
        if (slots[s].how == SLOT_OWN && order) order[no++] = (pref_t){&reqs[slots[s].first], s};
    if (!order) { /* fail every owned slot, still publishing so waiters wake */
        pref_t one;
        for (int s = 0; s < ns; s++)
            if (slots[s].how == SLOT_OWN) {
                one = (pref_t){&reqs[slots[s].first], s};
                run_chunk(d, m, reqs, keys, slots, &one, 1, res, st);
            }
        return;
    }
    qsort(order, (size_t)no, sizeof *order, cmp_prefix);
    for (int i = 0; i < no; i += d->max_batch)
        run_chunk(d, m, reqs, keys, slots, order + i, SS_MIN(d->max_batch, no - i), res, st);
    free(order);
}

static void wait_for(ss_dispatch_t *d, slot_t *slots, int ns, ss_infer_res_t *res)
{
    pthread_mutex_lock(&d->mu);
    for (int s = 0; s < ns; s++) {
        if (slots[s].how != SLOT_WAIT) continue;
        inflight_t *f = slots[s].fl;
        while (!f->done) pthread_cond_wait(&d->cv, &d->mu);
        if (ss_infer_res_copy(&res[slots[s].first], &f->res) != SS_OK)
            ss_infer_res_fail(&res[slots[s].first], SS_ERR_NOMEM, "dispatcher: out of memory");
        fl_release(d, f);
    }
    pthread_mutex_unlock(&d->mu);
}

/* Sorts request indices by key and builds one slot per distinct key; dup[i] = slot of i. */
static int fold_batch(char (*keys)[33], int n, slot_t *slots, int *dup)
{
    keyed_t *k = malloc((size_t)n * sizeof *k);
    if (!k) return -1;
    for (int i = 0; i < n; i++) k[i] = (keyed_t){keys[i], i};
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
    int ns = 0;
    for (int i = 0; i < n; i++) {
        if (i == 0 || strcmp(k[i].key, k[i - 1].key)) slots[ns++] = (slot_t){k[i].idx, SLOT_OWN, NULL};
        dup[k[i].idx] = ns - 1;
    }
    free(k);
    return ns;
}

static int finish(const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, const slot_t *slots,
                  const int *dup, char *err, size_t errsz)
{
    int rc = SS_OK;
    for (int i = 0; i < n; i++) {
        const slot_t *s = &slots[dup[i]];
        if (s->first != i && ss_infer_res_copy(&res[i], &res[s->first]) != SS_OK)
            ss_infer_res_fail(&res[i], SS_ERR_NOMEM, "dispatcher: out of memory");
        if (res[i].status != SS_OK && rc == SS_OK)
            rc = ss_seterr(err, errsz, (ss_err_t)res[i].status, "request %d (%s): %s", i,
                           ss_infer_kind_name(reqs[i].kind), res[i].error ? res[i].error : "failed");
    }
    return rc;
}

static void account(ss_dispatch_t *d, ss_infer_stats_t *acct, const ss_infer_stats_t *st)
{
    pthread_mutex_lock(&d->mu);
    ss_infer_stats_t *ts[2] = {&d->totals, acct};
    for (int i = 0; i < 2; i++) {
        if (!ts[i]) continue;
        ts[i]->requests += st->requests;
        ts[i]->calls += st->calls;
        ts[i]->cache_hits += st->cache_hits;
        ts[i]->prompt_tokens += st->prompt_tokens;
        ts[i]->gen_tokens += st->gen_tokens;
        ts[i]->ns += st->ns;
    }
    pthread_mutex_unlock(&d->mu);
}

int ss_dispatch_run(ss_dispatch_t *d, const char *model, ss_infer_stats_t *acct,
                    const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err, size_t errsz)
{
    if (n <= 0) return SS_OK;
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
    classify(d, slots, ns, keys, res, &st);
    run_owned(d, m, reqs, keys, slots, ns, res, &st);
    wait_for(d, slots, ns, res);
    rc = finish(reqs, n, res, slots, dup, err, errsz);
out:
    st.ns = ss_now_ns() - t0;
    account(d, acct, &st);
    free(keys);
    free(slots);
    free(dup);
    return rc;
}
