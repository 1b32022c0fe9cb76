/*
 * worker_cache.c — implements ss_worker_cache.h: the worker's answer store as an
 * adapter from ss_worker_cache_t to the result cache (cache.c, infer_key.c). Owns
 * the cache handle and the adapter.
 */
#include "ss_worker_cache.h"

#include "ss_cache.h"

#include <stdlib.h>

typedef struct wcache {
    ss_worker_cache_t api;
    ss_cache_t *c;
} wcache_t;

static int wc_get(void *ctx, const char *model_id, const ss_infer_req_t *req, ss_infer_res_t *res)
{
    wcache_t *w = ctx;
    char key[33], err[SS_ERRSZ];
    int found = 0;
    if (ss_infer_key(model_id, req, key) != SS_OK || ss_cache_get(w->c, key, res, &found, err, sizeof err) != SS_OK)
        return 0;
    return found;
}

static int wc_put(void *ctx, const char *model_id, const ss_infer_req_t *const *reqs, const ss_infer_res_t *const *res,
                  int n, char *err, size_t errsz)
{
    wcache_t *w = ctx;
    if (n <= 0)
        return SS_OK;
    char(*keys)[33] = malloc((size_t)n * sizeof *keys);
    ss_cache_entry_t *e = malloc((size_t)n * sizeof *e);
    int rc = keys && e ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "worker cache: out of memory");
    for (int i = 0; i < n && !rc; i++) {
        rc = ss_infer_key(model_id, reqs[i], keys[i]);
        e[i] = (ss_cache_entry_t){keys[i], reqs[i]->kind, res[i]};
    }
    if (!rc)
        rc = ss_cache_put(w->c, model_id, e, n, err, errsz);
    free(keys);
    free(e);
    return rc;
}

static void wc_close(void *ctx)
{
    wcache_t *w = ctx;
    ss_cache_close(w->c);
    free(w);
}

int ss_worker_cache_open(const char *path, ss_worker_cache_t **out, char *err, size_t errsz)
{
    *out = NULL;
    wcache_t *w = calloc(1, sizeof *w);
    if (!w)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "worker cache: out of memory");
    int rc = ss_cache_open(path, &w->c, err, errsz);
    if (rc) {
        free(w);
        return rc;
    }
    w->api = (ss_worker_cache_t){.ctx = w, .get = wc_get, .put = wc_put, .close = wc_close};
    *out = &w->api;
    return SS_OK;
}
