/*
 * backend_local.c — the "local" inference backend: the in-process engine of gpu/
 * (ss_llm_t) behind the ss_infer_backend_t vtable of ss_infer.h. model_id is
 * ss_llm_id() (file name + hash of the GGUF header and size), so result-cache keys
 * change whenever the model file does.
 */
#include "ss_infer.h"
#include "ss_llm.h"

#include <stdlib.h>

static int local_run(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err,
                     size_t errsz)
{
    return ss_llm_run(b->impl, reqs, n, res, err, errsz);
}

static int local_count(ss_infer_backend_t *b, const char *text) { return ss_llm_count_tokens(b->impl, text); }

static void local_destroy(ss_infer_backend_t *b)
{
    if (!b)
        return;
    ss_llm_close(b->impl);
    free(b->model_id);
    free(b);
}

ss_infer_backend_t *ss_backend_llm_wrap(ss_llm_t *m, const char *kind, char *err, size_t errsz)
{
    ss_infer_backend_t *b = calloc(1, sizeof *b);
    if (b)
        b->model_id = ss_strdup(ss_llm_id(m));
    if (!b || !b->model_id) {
        free(b);
        ss_llm_close(m);
        ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    b->kind = kind;
    b->impl = m;
    b->run = local_run;
    b->count_tokens = local_count;
    b->destroy = local_destroy;
    return b;
}

ss_llm_t *ss_backend_llm_model(ss_infer_backend_t *b)
{
    return b && b->destroy == local_destroy ? b->impl : NULL;
}

ss_infer_backend_t *ss_backend_local_new(const char *model_path, int threads, char *err, size_t errsz)
{
    ss_llm_opts_t o = {.threads = threads};
    ss_llm_t *m = NULL;
    if (ss_llm_open(model_path, &o, &m, err, errsz))
        return NULL;
    return ss_backend_llm_wrap(m, "local", err, errsz);
}
