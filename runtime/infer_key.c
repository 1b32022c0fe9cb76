/*
 * infer_key.c — the canonical request encoding behind the result-cache key
 * (declared in ss_cache.h).
 */
#include "ss_cache.h"

#include <stdlib.h>
#include <string.h>

/* Length-prefixed field: "<tag><len>:<bytes>", so no two field lists encode alike. */
static int put_field(ss_buf_t *b, char tag, const char *s, size_t n)
{
    if (ss_buf_printf(b, "%c%zu:", tag, n) != SS_OK) return SS_ERR_NOMEM;
    return ss_buf_append(b, s, n);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* stop as it was always encoded ("X"), then the further stops[] as a set: sorted, empty strings,
 * duplicates and copies of stop dropped ("Z" each). */
static int put_stops(ss_buf_t *b, const ss_infer_req_t *r)
{
    int rc = r->stop ? put_field(b, 'X', r->stop, strlen(r->stop)) : ss_buf_puts(b, "X-");
    if (rc || r->nstop <= 0 || !r->stops) return rc;
    int n = 0;
    const char **v = malloc((size_t)r->nstop * sizeof *v);
    if (!v) return SS_ERR_NOMEM;
    for (int i = 0; i < r->nstop; i++)
        if (r->stops[i] && *r->stops[i] && !(r->stop && !strcmp(r->stop, r->stops[i]))) v[n++] = r->stops[i];
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    for (int i = 0; !rc && i < n; i++)
        if (i == 0 || strcmp(v[i], v[i - 1])) rc = put_field(b, 'Z', v[i], strlen(v[i]));
    free(v);
    return rc;
}

int ss_infer_encode(ss_buf_t *b, const char *model_id, const ss_infer_req_t *r)
{
    const char *mid = model_id ? model_id : "";
    const char *p = r->prompt ? r->prompt : "";
    int rc = ss_buf_puts(b, "ssk1");
    if (!rc) rc = put_field(b, 'M', mid, strlen(mid));
    if (!rc) rc = ss_buf_printf(b, "K%d", (int)r->kind);
    if (!rc) rc = put_field(b, 'P', p, strlen(p));
    /* fields added later are encoded only when set, so older keys stay valid */
    if (!rc && r->system_len > 0 && r->kind != SS_INFER_EMBED)
        rc = ss_buf_printf(b, "Y%zu", SS_MIN(r->system_len, strlen(p)));
    if (!rc && r->raw && r->kind != SS_INFER_EMBED) rc = ss_buf_puts(b, "W");
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
        if (!rc && r->json_schema) rc = put_field(b, 'J', r->json_schema, strlen(r->json_schema));
        if (!rc && r->temperature > 0)
            rc = ss_buf_printf(b, "S%llu", (unsigned long long)r->seed);
        if (!rc && r->top_logprobs > 0) rc = ss_buf_printf(b, "L%d", r->top_logprobs);
        if (!rc) rc = put_stops(b, r);
        if (!rc && r->ntrack > 0) { /* dependency tracking: the chunks and layers */
            rc = ss_buf_printf(b, "D%d,%d", r->ntrack, r->track_layers);
            for (int i = 0; !rc && i < 2 * r->ntrack; i++) rc = ss_buf_printf(b, ",%zu", r->track_span[i]);
        }
        if (!rc && r->nchunks > 0 && r->recompute < 1) { /* chunk KV reuse: an approximate answer */
            rc = ss_buf_printf(b, "B%d,%.9g", r->nchunks, (double)r->recompute);
            for (int i = 0; !rc && i < 2 * r->nchunks; i++) rc = ss_buf_printf(b, ",%zu", r->chunk_span[i]);
        }
        if (!rc && r->prefill_only) /* streaming prefill: no answer */
            rc = ss_buf_printf(b, "P");
        if (!rc && r->nforced > 0) { /* forced answer tokens */
            rc = ss_buf_printf(b, "F%d", r->nforced);
            for (int i = 0; !rc && i < r->nforced; i++) rc = ss_buf_printf(b, ",%d", r->forced[i]);
        }
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
