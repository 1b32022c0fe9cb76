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
    free(r->dep);
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
    dst->dep = dup_bytes(src->dep, (size_t)SS_MAX(src->dep_len, 0), &bad);
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

/* ---- dependency records ---- */

int ss_infer_dep_encode(const ss_infer_dep_t *d, unsigned char **out, int *len)
{
    size_t nm = (size_t)d->nsent * (size_t)d->nchunk;
    size_t n = 4 + 12 + 4 * ((size_t)d->ntok + (size_t)d->nsent + nm);
    unsigned char *b = malloc(n), *p = b;
    if (!b)
        return SS_ERR_NOMEM;
    int32_t hdr[3] = {d->ntok, d->nsent, d->nchunk};
    memcpy(p, "SSD1", 4), p += 4;
    memcpy(p, hdr, 12), p += 12;
    memcpy(p, d->tok, 4 * (size_t)d->ntok), p += 4 * (size_t)d->ntok;
    memcpy(p, d->sent_end, 4 * (size_t)d->nsent), p += 4 * (size_t)d->nsent;
    if (nm)
        memcpy(p, d->mass, 4 * nm);
    *out = b;
    *len = (int)n;
    return SS_OK;
}

int ss_infer_dep_decode(const void *blob, int len, ss_infer_dep_t *d)
{
    const unsigned char *p = blob;
    memset(d, 0, sizeof *d);
    int32_t hdr[3];
    if (!p || len < 16 || memcmp(p, "SSD1", 4))
        return SS_ERR_INVALID;
    memcpy(hdr, p + 4, 12);
    if (hdr[0] < 0 || hdr[1] < 0 || hdr[2] < 0 || hdr[0] > (1 << 24) || hdr[1] > hdr[0] + 1 || hdr[2] > (1 << 16))
        return SS_ERR_INVALID;
    size_t nm = (size_t)hdr[1] * (size_t)hdr[2];
    if ((size_t)len != 16 + 4 * ((size_t)hdr[0] + (size_t)hdr[1] + nm))
        return SS_ERR_INVALID;
    d->ntok = hdr[0], d->nsent = hdr[1], d->nchunk = hdr[2];
    d->tok = malloc(4 * (size_t)d->ntok + 4);
    d->sent_end = malloc(4 * (size_t)d->nsent + 4);
    d->mass = malloc(4 * nm + 4);
    if (!d->tok || !d->sent_end || !d->mass) {
        ss_infer_dep_free(d);
        return SS_ERR_NOMEM;
    }
    p += 16;
    memcpy(d->tok, p, 4 * (size_t)d->ntok), p += 4 * (size_t)d->ntok;
    memcpy(d->sent_end, p, 4 * (size_t)d->nsent), p += 4 * (size_t)d->nsent;
    if (nm)
        memcpy(d->mass, p, 4 * nm);
    for (int s = 0; s < d->nsent; s++)
        if (d->sent_end[s] <= (s ? d->sent_end[s - 1] : 0) || d->sent_end[s] > d->ntok) {
            ss_infer_dep_free(d);
            return SS_ERR_INVALID;
        }
    return SS_OK;
}

void ss_infer_dep_free(ss_infer_dep_t *d)
{
    if (!d)
        return;
    free(d->tok);
    free(d->sent_end);
    free(d->mass);
    memset(d, 0, sizeof *d);
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
