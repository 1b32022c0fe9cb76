/*
 * infer.c — helpers on inference results (declared in ss_infer.h): freeing,
 * failing and deep-copying a result, and the name of a request kind. Every
 * layer that handles results (the GGUF engine's worker, the dispatcher,
 * operators) uses these.
 */
#include "ss_infer.h"

#include <stdlib.h>
#include <string.h>

void ss_infer_res_clear(ss_infer_res_t *r)
{
    if (!r) return;
    free(r->error);
    free(r->text);
    free(r->probs);
    free(r->emb);
    for (int i = 0; r->top_tokens && i < r->ntop; i++)
        free(r->top_tokens[i]);
    free(r->top_tokens);
    free(r->top_logprobs);
    free(r->token_logprobs);
    memset(r, 0, sizeof *r);
}

void ss_infer_res_fail(ss_infer_res_t *r, int code, const char *msg)
{
    ss_infer_res_clear(r);
    r->status = code ? code : SS_ERR_INTERNAL;
    r->error = ss_strdup(msg ? msg : ss_err2str((ss_err_t)r->status));
}

static void *dup_bytes(const void *p, size_t n, int *bad)
{
    if (!p || n == 0) return NULL;
    void *q = malloc(n);
    if (!q) { *bad = 1; return NULL; }
    memcpy(q, p, n);
    return q;
}

int ss_infer_res_copy(ss_infer_res_t *dst, const ss_infer_res_t *src)
{
    int bad = 0;
    *dst = *src;
    dst->error = src->error ? ss_strdup(src->error) : NULL;
    dst->text = src->text ? ss_strdup(src->text) : NULL;
    dst->probs = dup_bytes(src->probs, (size_t)SS_MAX(src->nprobs, 0) * sizeof(float), &bad);
    dst->emb = dup_bytes(src->emb, (size_t)SS_MAX(src->dim, 0) * sizeof(float), &bad);
    dst->top_logprobs = dup_bytes(src->top_logprobs, (size_t)SS_MAX(src->ntop, 0) * sizeof(float), &bad);
    dst->token_logprobs = dup_bytes(src->token_logprobs, (size_t)SS_MAX(src->gen_tokens, 0) * sizeof(float), &bad);
    dst->top_tokens = NULL;
    if (src->top_tokens && src->ntop > 0) {
        dst->top_tokens = calloc((size_t)src->ntop, sizeof(char *));
        for (int i = 0; dst->top_tokens && i < src->ntop; i++)
            if (!(dst->top_tokens[i] = ss_strdup(src->top_tokens[i] ? src->top_tokens[i] : "")))
                bad = 1;
        if (!dst->top_tokens)
            bad = 1;
    }
    if (bad || (src->error && !dst->error) || (src->text && !dst->text)) {
        ss_infer_res_clear(dst);
        return SS_ERR_NOMEM;
    }
    return SS_OK;
}

const char *ss_infer_kind_name(ss_infer_kind_t k)
{
    switch (k) {
    case SS_INFER_CHOOSE: return "choose";
    case SS_INFER_GENERATE: return "generate";
    case SS_INFER_SCORE: return "score";
    case SS_INFER_EMBED: return "embed";
    }
    return "?";
}
