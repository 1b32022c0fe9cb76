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
 * file name, size and a hash of the file's first and last 64 KiB. A model
 * that cannot load is still caught early: CREATE MODEL loads it (a missing
 * or bad file is the statement's error), and at start each local model's
 * GGUF header is validated (a failure is logged and becomes the model's
 * status, which SHOW VIEWS shows for the views that use it).
 *
 * WITH (max_in_flight = N) on any backend sets how many of its requests the
 * dispatcher keeps in the backend at once (ss_dispatch_set_capacity).
 *
 * The server's policy (ss_engine_opts_t key_envs, models_dir) is checked each time a
 * model is registered: api_key_env may name only an allowed variable (and send it only
 * to the URL prefix allowed with it), a local path must resolve inside the models
 * directory. So a client's CREATE MODEL can neither send a server secret to a URL of its
 * choosing nor make the engine open a file of its choosing.
 */
#include "engine_int.h"
#include "ss_gguf.h"

#include <stdlib.h>
#include <string.h>
#include <limits.h>
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

/* Loads a lazy local backend now (CREATE MODEL). */
static int lazy_load_now(ss_infer_backend_t *b, char *err, size_t errsz)
{
    return b->run == lazy_run ? lazy_load(b, err, errsz) : SS_OK;
}

/* Validates a local model's file without loading its weights (at start). */
static int check_gguf(const char *path, char *err, size_t errsz)
{
    ss_gguf_t *g = NULL;
    int rc = ss_gguf_open(path, &g, err, errsz);
    ss_gguf_close(g);
    return rc;
}

static const char *mopt(const ss_cat_model_t *m, const char *name)
{
    for (int i = 0; i < m->nopts; i++)
        if (!strcmp(m->opts[i].name, name))
            return m->opts[i].value;
    return NULL;
}

/* max_in_flight = N: an integer in 1..100000, else an error naming it. */
int eng_model_capacity(const char *v, int *out, char *err, size_t errsz)
{
    char *end = NULL;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || x < 1 || x > 100000)
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "max_in_flight must be an integer from 1 to 100000, got '%s'",
                         v ? v : "");
    *out = (int)x;
    return SS_OK;
}

/* ---- the server's policy ---- */

int eng_models_policy_init(ss_engine_t *e, const ss_engine_opts_t *opts, char *err, size_t errsz)
{
    e->key_envs_set = opts->key_envs_set || opts->key_envs != NULL;
    int n = 0;
    while (opts->key_envs && opts->key_envs[n])
        n++;
    if (e->key_envs_set && !(e->key_envs = calloc((size_t)n + 1, sizeof *e->key_envs)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        if (!(e->key_envs[i] = ss_strdup(opts->key_envs[i])))
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (opts->models_dir) {
        char real[PATH_MAX];
        struct stat sb;
        if (!realpath(opts->models_dir, real) || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return ss_seterr(err, errsz, SS_ERR_INVALID, "models directory %s: not a directory", opts->models_dir);
        if (!(e->models_dir = ss_strdup(real)))
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    return SS_OK;
}

void eng_models_policy_free(ss_engine_t *e)
{
    for (int i = 0; e->key_envs && e->key_envs[i]; i++)
        free(e->key_envs[i]);
    free(e->key_envs);
    free(e->models_dir);
    e->key_envs = NULL;
    e->models_dir = NULL;
}

/* A local model's file: with a models directory, path (relative to it, or absolute) must
 * resolve inside it; *resolved is malloc'd. Never opens the file. */
static int policy_path(ss_engine_t *e, const char *model, const char *path, char **resolved, char *err,
                       size_t errsz)
{
    if (!e->models_dir)
        return (*resolved = ss_strdup(path)) ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    char *joined = path[0] == '/' ? ss_strdup(path) : ss_sprintf("%s/%s", e->models_dir, path);
    char real[PATH_MAX];
    int ok = joined && realpath(joined, real) != NULL;
    free(joined);
    size_t dl = strlen(e->models_dir);
    if (!ok || strncmp(real, e->models_dir, dl) != 0 || real[dl] != '/')
        return ss_seterr(err, errsz, SS_ERR_DENIED, "model %s: path '%s' is not a file in the models directory %s "
                         "(serve --models-dir)", model, path, e->models_dir);
    return (*resolved = ss_strdup(real)) ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
}

/* api_key_env must be an allowed variable, and the URL (every URL of a pool) must start with the
 * prefix allowed with it. */
static int policy_key_env(ss_engine_t *e, const ss_cat_model_t *m, const char *keyenv, const char *url, char *err,
                          size_t errsz)
{
    if (!keyenv || !e->key_envs_set)
        return SS_OK;
    for (int i = 0; e->key_envs[i]; i++) {
        const char *ent = e->key_envs[i], *eq = strchr(ent, '=');
        size_t nl = eq ? (size_t)(eq - ent) : strlen(ent);
        if (strlen(keyenv) != nl || strncmp(ent, keyenv, nl) != 0)
            continue;
        if (!eq)
            return SS_OK;
        const char *pre = eq + 1;
        for (const char *u = url ? url : ""; *u;) {
            size_t ul = strcspn(u, ",");
            while (*u == ' ')
                u++, ul--;
            if (ul < strlen(pre) || strncmp(u, pre, strlen(pre)) != 0)
                return ss_seterr(err, errsz, SS_ERR_DENIED, "model %s: the key in %s may only be sent to URLs "
                                 "starting with %s", m->name, keyenv, pre);
            u += ul;
            if (*u == ',')
                u++;
        }
        return SS_OK;
    }
    return ss_seterr(err, errsz, SS_ERR_DENIED, "model %s: api_key_env %s is not allowed by this server (start "
                     "serve with --allow-key-env %s to allow it)", m->name, keyenv, keyenv);
}

static const char *model_opt(void *m, const char *name) { return mopt(m, name); }

int eng_model_add(ss_engine_t *e, const char *name, int load_now, char *err, size_t errsz)
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
        char *real = NULL;
        int prc = policy_path(e, name, path, &real, err, errsz);
        if (prc)
            return prc;
        const char *th = mopt(m, "threads");
        b = lazy_new(real, th ? atoi(th) : e->threads);
        free(real);
        if (!b)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        int rc = load_now ? lazy_load_now(b, err, errsz) : SS_OK;
        if (rc) {
            lazy_destroy(b);
            return rc;
        }
    } else if (ss_strcaseeq(m->backend, "openai")) {
        int prc = policy_key_env(e, m, mopt(m, "api_key_env"), mopt(m, "url"), err, errsz);
        if (prc)
            return prc;
        b = ss_backend_openai_config(name, model_opt, (void *)m, err, errsz); /* options: ss_backends.h */
        if (!b)
            return SS_ERR_MODEL;
    } else {
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "model %s: unknown backend %s (local or openai)", name,
                         m->backend);
    }
    /* a model dropped and created again replaces the backend registered under its name */
    int rc = ss_dispatch_has_model(e->disp, name) ? ss_dispatch_replace_model(e->disp, name, b, err, errsz)
                                                  : ss_dispatch_add_model(e->disp, name, b, is_default, err, errsz);
    const char *mif = mopt(m, "max_in_flight");
    int cap = 0;
    if (!rc && mif && !(rc = eng_model_capacity(mif, &cap, err, errsz)))
        rc = ss_dispatch_set_capacity(e->disp, name, cap, err, errsz);
    return rc;
}

/* At start: a local model whose file cannot be opened is reported now (logged, and its
 * status says so), not on the first request. */
static void check_local_model(ss_engine_t *e, const ss_cat_model_t *m)
{
    const char *opt = mopt(m, "path");
    char err[SS_ERRSZ], *path = NULL;
    if ((m->backend && !ss_strcaseeq(m->backend, "local")) || !opt || policy_path(e, m->name, opt, &path, err, sizeof err))
        return;
    if (!check_gguf(path, err, sizeof err)) {
        free(path);
        return;
    }
    ss_log(SS_LOG_ERROR, "engine", "cannot load model %s: %s (views that use it wait until it loads)", m->name, err);
    /* the model's state says what its first request would: the same text whichever comes first */
    char *msg = ss_sprintf("loading model %s: %s", path, err);
    ss_dispatch_model_failed(e->disp, m->name, msg ? msg : err);
    free(msg);
    free(path);
}

int eng_models_register(ss_engine_t *e, char *err, size_t errsz)
{
    ss_infer_backend_t *b = lazy_new(e->model_path, e->threads);
    if (!b)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = ss_dispatch_add_model(e->disp, "local", b, 1, err, errsz);
    for (int i = 0; !rc && i < ss_catalog_nmodels(e->cat); i++) {
        rc = eng_model_add(e, ss_catalog_model_at(e->cat, i)->name, 0, err, errsz);
        if (!rc)
            check_local_model(e, ss_catalog_model_at(e->cat, i));
        if (rc) {
            /* a broken model definition must not keep the engine from opening */
            ss_log(SS_LOG_WARN, "engine", "model %s not registered: %s", ss_catalog_model_at(e->cat, i)->name, err);
            rc = SS_OK;
        }
    }
    return rc;
}
