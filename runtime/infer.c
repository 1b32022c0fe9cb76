/*
 * infer.c — helpers on inference requests and results: freeing and copying
 * results, and the canonical request encoding behind the result-cache key
 * (declared in ss_infer.h and ss_cache.h).
 */
#include "ss_cache.h"
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

/* Length-prefixed field: "<tag><len>:<bytes>", so no two field lists encode alike. */
static int put_field(ss_buf_t *b, char tag, const char *s, size_t n)
{
    if (ss_buf_printf(b, "%c%zu:", tag, n) != SS_OK) return SS_ERR_NOMEM;
    return ss_buf_append(b, s, n);
}

int ss_infer_encode(ss_buf_t *b, const char *model_id, const ss_infer_req_t *r)
{
    const char *mid = model_id ? model_id : "";
    const char *p = r->prompt ? r->prompt : "";
    int rc = ss_buf_puts(b, "ssk1");
    if (!rc) rc = put_field(b, 'M', mid, strlen(mid));
    if (!rc) rc = ss_buf_printf(b, "K%d", (int)r->kind);
    if (!rc) rc = put_field(b, 'P', p, strlen(p));
    switch (r->kind) {
    case SS_INFER_CHOOSE:
        if (!rc) rc = ss_buf_printf(b, "N%d", r->nchoices);
        for (int i = 0; !rc && i < r->nchoices; i++) {
            const char *c = r->choices && r->choices[i] ? r->choices[i] : "";
            rc = put_field(b, 'C', c, strlen(c));
        }
        break;
    case SS_INFER_GENERATE:
        /* temperature printed with 9 significant digits: exact for a float */
        if (!rc) rc = ss_buf_printf(b, "T%d,%.9g", r->max_tokens, (double)r->temperature);
        if (!rc && r->temperature > 0)
            rc = ss_buf_printf(b, "S%llu", (unsigned long long)r->seed);
        if (!rc && r->top_logprobs > 0) rc = ss_buf_printf(b, "L%d", r->top_logprobs);
        if (!rc) rc = r->stop ? put_field(b, 'X', r->stop, strlen(r->stop)) : ss_buf_puts(b, "X-");
        break;
    case SS_INFER_SCORE:
        if (!rc) rc = ss_buf_printf(b, "R%d,%d", r->score_min, r->score_max);
        break;
    case SS_INFER_EMBED:
        break;
    }
    return rc ? SS_ERR_NOMEM : SS_OK;
}

int ss_infer_key(const char *model_id, const ss_infer_req_t *r, char out[33])
{
    ss_buf_t b = SS_BUF_INIT;
    int rc = ss_infer_encode(&b, model_id, r);
    if (rc == SS_OK) ss_hash_hex128(b.data, b.len, out);
    ss_buf_free(&b);
    return rc;
}
