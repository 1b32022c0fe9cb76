/*
 * llm_dep.c — the bookkeeping of LLM_GENERATE MAINTAIN = 'dependency' (issue 17): the input
 * chunks of an answer's prompt (the instruction, each earlier turn, each retrieved document, the
 * turn itself), each named by a label and fingerprinted by a hash of its text; their encoding for
 * the operator's state; and the decision of how much of an answer survives a change of its
 * chunks, from the per-sentence attention masses the engine recorded (ss_infer_dep_t).
 *
 * Pure functions over arrays: llm_generate.c stores the chunk list and the engine's dependency
 * record next to each answer and calls ss_dep_keep when the answer is revisited.
 */
#include "ss_sem.h"

#include <stdlib.h>
#include <string.h>

#define LABEL_SEED 0x6c61626c /* "labl" */
#define TEXT_SEED 0x74657874  /* "text" */

int ss_dep_chunks_add(ss_dep_chunks_t *c, const char *label, const char *prompt, size_t a, size_t b)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 8;
        uint64_t *id = realloc(c->id, (size_t)cap * sizeof *id);
        if (id)
            c->id = id;
        uint64_t *h = realloc(c->hash, (size_t)cap * sizeof *h);
        if (h)
            c->hash = h;
        size_t *sp = realloc(c->span, (size_t)cap * 2 * sizeof *sp);
        if (sp)
            c->span = sp;
        char **lb = realloc(c->label, (size_t)cap * sizeof *lb);
        if (lb)
            c->label = lb;
        if (!id || !h || !sp || !lb)
            return SS_ERR_NOMEM;
        c->cap = cap;
    }
    if (!(c->label[c->n] = ss_strdup(label)))
        return SS_ERR_NOMEM;
    c->id[c->n] = ss_hash64(label, strlen(label), LABEL_SEED);
    c->hash[c->n] = ss_hash64(prompt + a, b - a, TEXT_SEED);
    c->span[2 * c->n] = a;
    c->span[2 * c->n + 1] = b;
    c->n++;
    return SS_OK;
}

void ss_dep_chunks_free(ss_dep_chunks_t *c)
{
    if (!c)
        return;
    free(c->id);
    free(c->hash);
    free(c->span);
    for (int i = 0; c->label && i < c->n; i++)
        free(c->label[i]);
    free(c->label);
    memset(c, 0, sizeof *c);
}

int ss_dep_chunks_encode(const ss_dep_chunks_t *c, ss_buf_t *out)
{
    for (int i = 0; i < c->n; i++) {
        uint32_t n = (uint32_t)strlen(c->label[i]);
        int rc = ss_buf_append(out, &c->id[i], 8);
        if (!rc)
            rc = ss_buf_append(out, &c->hash[i], 8);
        if (!rc)
            rc = ss_buf_append(out, &n, 4);
        if (!rc)
            rc = ss_buf_append(out, c->label[i], n);
        if (rc)
            return rc;
    }
    return SS_OK;
}

int ss_dep_chunks_decode(const void *p, int len, ss_dep_chunks_t *c)
{
    memset(c, 0, sizeof *c);
    const unsigned char *b = p;
    size_t at = 0, n = len > 0 ? (size_t)len : 0;
    while (at < n) {
        uint64_t id, h;
        uint32_t ln;
        if (n - at < 20)
            goto bad;
        memcpy(&id, b + at, 8);
        memcpy(&h, b + at + 8, 8);
        memcpy(&ln, b + at + 16, 4);
        at += 20;
        if (ln > n - at)
            goto bad;
        char *label = ss_strndup((const char *)b + at, ln);
        at += ln;
        int rc = label ? ss_dep_chunks_add(c, label, "", 0, 0) : SS_ERR_NOMEM;
        free(label);
        if (rc) {
            ss_dep_chunks_free(c);
            return rc;
        }
        c->id[c->n - 1] = id; /* as stored */
        c->hash[c->n - 1] = h;
    }
    return SS_OK;
bad:
    ss_dep_chunks_free(c);
    return SS_ERR_INVALID;
}

static int find_id(const ss_dep_chunks_t *c, uint64_t id)
{
    for (int i = 0; i < c->n; i++)
        if (c->id[i] == id)
            return i;
    return -1;
}

/* The first sentence of d whose mass on chunk c reaches tau (d->nsent when none). */
static int first_dependent(const ss_infer_dep_t *d, int c, double tau)
{
    for (int s = 0; s < d->nsent; s++)
        if ((double)d->mass[(size_t)s * d->nchunk + c] >= tau)
            return s;
    return d->nsent;
}

/* Marks in moved[0..old->n) the chunks present in both lists that changed their order relative to
 * the others: from the first place where the common labels, in order, differ, all of them. */
static int mark_moved(const ss_dep_chunks_t *old, const ss_dep_chunks_t *now, char *moved)
{
    int i = 0, j = 0, differ = 0;
    for (;;) {
        while (i < old->n && find_id(now, old->id[i]) < 0)
            i++;
        while (j < now->n && find_id(old, now->id[j]) < 0)
            j++;
        if (i >= old->n || j >= now->n)
            return 0;
        differ |= old->id[i] != now->id[j];
        moved[i] = (char)differ;
        i++, j++;
    }
}

int ss_dep_keep(const ss_infer_dep_t *d, const ss_dep_chunks_t *old, const ss_dep_chunks_t *now, double tau,
                int *cause)
{
    int keep = d->nsent;
    if (cause)
        *cause = -1;
    if (d->nchunk != old->n || d->nsent == 0)
        return 0; /* a record that does not describe these chunks: trust nothing */
    char *moved = calloc((size_t)old->n + 1, 1);
    if (!moved)
        return 0;
    mark_moved(old, now, moved);
    for (int i = 0; i < old->n; i++) { /* changed, moved or gone: from its first dependent sentence */
        int j = find_id(now, old->id[i]);
        if (j >= 0 && now->hash[j] == old->hash[i] && !moved[i])
            continue;
        int s = first_dependent(d, i, tau);
        if (s < keep) {
            keep = s;
            if (cause)
                *cause = i;
        }
    }
    free(moved);
    for (int j = 0; j < now->n && keep > 0; j++) /* entered: no attention known, all of it */
        if (find_id(old, now->id[j]) < 0) {
            keep = 0;
            if (cause)
                *cause = old->n + j;
        }
    return keep;
}

int ss_dep_remap(const ss_infer_dep_t *d, const ss_dep_chunks_t *old, const ss_dep_chunks_t *now,
                 ss_infer_dep_t *out)
{
    memset(out, 0, sizeof *out);
    out->ntok = d->ntok;
    out->nsent = d->nsent;
    out->nchunk = now->n;
    out->tok = malloc(((size_t)d->ntok + 1) * sizeof *out->tok);
    out->sent_end = malloc(((size_t)d->nsent + 1) * sizeof *out->sent_end);
    out->mass = calloc((size_t)d->nsent * (size_t)now->n + 1, sizeof *out->mass);
    if (!out->tok || !out->sent_end || !out->mass) {
        ss_infer_dep_free(out);
        return SS_ERR_NOMEM;
    }
    memcpy(out->tok, d->tok, (size_t)d->ntok * sizeof *out->tok);
    memcpy(out->sent_end, d->sent_end, (size_t)d->nsent * sizeof *out->sent_end);
    for (int j = 0; j < now->n; j++) {
        int i = find_id(old, now->id[j]);
        for (int s = 0; i >= 0 && i < d->nchunk && s < d->nsent; s++)
            out->mass[(size_t)s * now->n + j] = d->mass[(size_t)s * d->nchunk + i];
    }
    return SS_OK;
}
