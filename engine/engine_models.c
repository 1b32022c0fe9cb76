/*
 * engine_models.c — the models the engine registers with its dispatcher: the
 * default local model as "local", and every CREATE MODEL entry (backend local:
 * WITH (path=..., threads=...); backend openai: WITH (url=..., model=...,
 * api_key_env=..., api=..., rpm=..., tpm=...: ss_backend_openai_config); a
 * comma-separated url list makes a pool of workers, runtime/backend_pool.c).
 *
 * Local models load lazily: the registered backend is a thin wrapper that
 * loads the GGUF file on the first request that misses the result cache, so
 * relational-only scripts, and re-runs answered from the cache, never pay for
 * loading a model. The wrapper's cache identity is computed without loading:
 * file name, size and a hash of the file's first and last 64 KiB.
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct lazy {
    char *path;
    int threads;
    ss_infer_backend_t *real; /* owned once loaded */
} lazy_t;

static int lazy_load(ss_infer_backend_t *b, char *err, size_t errsz)
{
    lazy_t *l = b->impl;
    if (l->real)
        return SS_OK;
    char lerr[SS_ERRSZ] = "";
    l->real = ss_backend_local_new(l->path, l->threads, lerr, sizeof lerr);
    if (!l->real)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "loading model %s: %s", l->path, lerr);
    return SS_OK;
}

static int lazy_run(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err,
                    size_t errsz)
{
    int rc = lazy_load(b, err, errsz);
    if (rc)
        return rc;
    lazy_t *l = b->impl;
    return l->real->run(l->real, reqs, n, res, err, errsz);
}

static int lazy_count_tokens(ss_infer_backend_t *b, const char *text)
{
    lazy_t *l = b->impl;
    if (l->real && l->real->count_tokens)
        return l->real->count_tokens(l->real, text);
    return (int)((strlen(text) + 3) / 4); /* estimate until the model is loaded */
}

static void lazy_destroy(ss_infer_backend_t *b)
{
    if (!b)
        return;
    lazy_t *l = b->impl;
    if (l) {
        if (l->real && l->real->destroy)
            l->real->destroy(l->real);
        free(l->path);
        free(l);
    }
    free(b->model_id);
    free(b);
}

/* "local:<file name>:<size>:<hash of head and tail>" (computed without loading). */
static char *file_identity(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    struct stat sb;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &sb) != 0) {
        if (f)
            fclose(f);
        return ss_sprintf("local:%s:missing", base);
    }
    enum { CHUNK = 65536 };
    char *buf = malloc(2 * CHUNK);
    size_t n = 0;
    if (buf) {
        n = fread(buf, 1, CHUNK, f);
        if (sb.st_size > 2 * CHUNK && fseeko(f, sb.st_size - CHUNK, SEEK_SET) == 0)
            n += fread(buf + n, 1, CHUNK, f);
    }
    fclose(f);
    char hex[33] = "0";
    if (buf)
        ss_hash_hex128(buf, n, hex);
    free(buf);
    return ss_sprintf("local:%s:%lld:%s", base, (long long)sb.st_size, hex);
}

static ss_infer_backend_t *lazy_new(const char *path, int threads)
{
    ss_infer_backend_t *b = calloc(1, sizeof *b);
    lazy_t *l = calloc(1, sizeof *l);
    if (!b || !l || !(l->path = ss_strdup(path)) || !(b->model_id = file_identity(path))) {
        if (l)
            free(l->path);
        free(l);
        if (b)
            free(b->model_id);
        free(b);
        return NULL;
    }
    l->threads = threads;
    b->kind = "local";
    b->impl = l;
    b->run = lazy_run;
    b->count_tokens = lazy_count_tokens;
    b->destroy = lazy_destroy;
    return b;
}

static const char *mopt(const ss_cat_model_t *m, const char *name)
{
    for (int i = 0; i < m->nopts; i++)
        if (!strcmp(m->opts[i].name, name))
            return m->opts[i].value;
    return NULL;
}

static const char *model_opt(void *m, const char *name) { return mopt(m, name); }

int eng_model_add(ss_engine_t *e, const char *name, char *err, size_t errsz)
{
    if (!e->disp)
        return SS_OK;
    const ss_cat_model_t *m = ss_catalog_model(e->cat, name);
    if (!m)
        return ss_seterr(err, errsz, SS_ERR_NOTFOUND, "no such model: %s", name);
    ss_infer_backend_t *b = NULL;
    const char *dflt = mopt(m, "default");
    int is_default = dflt && (!strcmp(dflt, "1") || ss_strcaseeq(dflt, "true"));
    if (!m->backend || ss_strcaseeq(m->backend, "local")) {
        const char *path = mopt(m, "path");
        if (!path)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "model %s: backend local needs WITH (path = 'file.gguf')",
                             name);
        const char *th = mopt(m, "threads");
        b = lazy_new(path, th ? atoi(th) : e->threads);
        if (!b)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    } else if (ss_strcaseeq(m->backend, "openai")) {
        b = ss_backend_openai_config(name, model_opt, (void *)m, err, errsz); /* options: ss_backends.h */
        if (!b)
            return SS_ERR_MODEL;
    } else {
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "model %s: unknown backend %s (local or openai)", name,
                         m->backend);
    }
    return ss_dispatch_add_model(e->disp, name, b, is_default, err, errsz);
}

int eng_models_register(ss_engine_t *e, char *err, size_t errsz)
{
    ss_infer_backend_t *b = lazy_new(e->model_path, e->threads);
    if (!b)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = ss_dispatch_add_model(e->disp, "local", b, 1, err, errsz);
    for (int i = 0; !rc && i < ss_catalog_nmodels(e->cat); i++) {
        rc = eng_model_add(e, ss_catalog_model_at(e->cat, i)->name, err, errsz);
        if (rc) {
            /* a broken model definition must not keep the engine from opening */
            ss_log(SS_LOG_WARN, "engine", "model %s not registered: %s", ss_catalog_model_at(e->cat, i)->name, err);
            rc = SS_OK;
        }
    }
    return rc;
}
