/*
 * engine.c — the sequence scheduler: computes the pending tokens of many sequences
 * in shared forward passes (ubatches), attaching KV blocks as positions advance.
 *
 * Prefix reuse: before computing, a sequence takes every full block of its prompt
 * that is in the prefix table (kvcache.c); blocks it completes are registered for
 * others. Within one call, prefixes shared by several sequences but not yet cached
 * are computed once first (by one "leader" per shared prefix), so e.g. 1,000 rows
 * of one operator pay for their common instruction once, in the same batch.
 *
 * KV_REUSE = 'chunks': a sequence with a blend spec is first prefilled by blending cached
 * chunks (kvblend.c) up to its last token; its KV is then not a plain prefill's, so none of its
 * blocks is registered in the prefix table (seq_t.noreg).
 */
#include "llm_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int seq_push(seq_t *s, int tok)
{
    if (s->ntok == s->cap) {
        int nc = s->cap ? 2 * s->cap : 64;
        int *p = realloc(s->tok, (size_t)nc * sizeof *p);
        if (!p)
            return -1;
        s->tok = p;
        s->cap = nc;
    }
    s->tok[s->ntok++] = tok;
    return 0;
}

void seq_release(ss_llm_t *m, seq_t *s)
{
    for (int i = 0; i < s->nblocks; i++)
        kv_release(&m->kv, s->blocks[i]);
    free(s->tok);
    free(s->blocks);
    s->tok = NULL;
    s->blocks = NULL;
    s->ntok = s->cap = s->nblocks = s->bcap = s->ncomp = s->nreg = 0;
    s->chain = 0;
    s->noreg = 0;
    s->blend = NULL;
}

static int seq_add_block(seq_t *s, int id)
{
    if (s->nblocks == s->bcap) {
        int nc = s->bcap ? 2 * s->bcap : 16;
        int *p = realloc(s->blocks, (size_t)nc * sizeof *p);
        if (!p)
            return -1;
        s->blocks = p;
        s->bcap = nc;
    }
    s->blocks[s->nblocks++] = id;
    return 0;
}

/* Tokens of s that may come from the cache: none that must produce logits or hidden
 * states, and never the last one. */
static int reusable(const seq_t *s)
{
    if (s->hid_sum || !s->reuse)
        return 0;
    int r = SS_MIN(s->ntok - 1, s->out_from);
    if (s->trk)
        r = SS_MIN(r, s->trk_from); /* tracked positions must compute their attention */
    if (s->limit)
        r = SS_MIN(r, s->limit);
    return r;
}

static void seq_lookup(ss_llm_t *m, seq_t *s)
{
    if (!m->prefix_on || s->noreg || s->ncomp != s->nreg * KV_BLOCK || s->nblocks != s->nreg)
        return;
    int r = reusable(s);
    while ((s->nreg + 1) * KV_BLOCK <= r) {
        const int *t = s->tok + s->nreg * KV_BLOCK;
        uint64_t h = kv_chain(s->chain, t);
        int id = kv_lookup(&m->kv, h, s->chain, t);
        if (id < 0)
            break;
        if (seq_add_block(s, id)) {
            kv_release(&m->kv, id);
            break;
        }
        s->chain = h;
        s->nreg++;
        s->ncomp += KV_BLOCK;
        m->st.tokens_reused += KV_BLOCK;
    }
}

void eng_lookup(ss_llm_t *m, seq_t *s) { seq_lookup(m, s); }

static void seq_register(ss_llm_t *m, seq_t *s)
{
    if (s->noreg)
        return; /* blended KV: not what a plain prefill of these tokens computes */
    while ((s->nreg + 1) * KV_BLOCK <= s->ncomp) {
        const int *t = s->tok + s->nreg * KV_BLOCK;
        uint64_t h = kv_chain(s->chain, t);
        if (m->prefix_on)
            kv_register(&m->kv, s->blocks[s->nreg], h, s->chain, t);
        s->chain = h;
        s->nreg++;
    }
}

static ss_err_t ensure_blocks(ss_llm_t *m, seq_t *s, int npos, char *err, size_t errsz)
{
    while (s->nblocks * KV_BLOCK < npos) {
        int id = kv_alloc(&m->kv);
        if (id < 0 || seq_add_block(s, id)) {
            if (id >= 0)
                kv_release(&m->kv, id);
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory for KV blocks");
        }
    }
    if (m->kv.nb > m->be_blocks) {
        ss_err_t rc = m->be->reserve(m->be_ctx, m->kv.nb, err, errsz);
        if (rc)
            return rc;
        m->be_blocks = m->kv.nb;
    }
    return SS_OK;
}

void eng_register_upto(ss_llm_t *m, seq_t *s, int upto)
{
    int ncomp = s->ncomp, noreg = s->noreg;
    s->ncomp = SS_MIN(upto, ncomp);
    s->noreg = 0;
    seq_register(m, s);
    s->ncomp = ncomp;
    s->noreg = noreg;
}

ss_err_t eng_blocks(ss_llm_t *m, seq_t *s, int npos, char *err, size_t errsz)
{
    return ensure_blocks(m, s, npos, err, errsz);
}

ss_err_t seq_fork(ss_llm_t *m, seq_t *dst, const seq_t *src, char *err, size_t errsz)
{
    int n = src->ncomp, full = n / KV_BLOCK;
    for (int i = 0; i < src->ntok; i++)
        if (seq_push(dst, src->tok[i]))
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int b = 0; b < full; b++) {
        if (seq_add_block(dst, src->blocks[b]))
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        kv_ref(&m->kv, src->blocks[b]);
    }
    if (n % KV_BLOCK && m->be->copy) {
        ss_err_t rc = ensure_blocks(m, dst, n, err, errsz);
        if (rc)
            return rc;
        m->be->copy(m->be_ctx, dst->blocks[full], src->blocks[full]);
    } else {
        n = full * KV_BLOCK; /* no copy: the partial block's positions are recomputed */
    }
    dst->ncomp = n;
    dst->noreg = src->noreg;
    dst->nreg = SS_MIN(src->nreg, full);
    dst->chain = dst->nreg == src->nreg ? src->chain : 0;
    if (dst->nreg != src->nreg) { /* recompute the chain through nreg blocks */
        dst->chain = 0;
        for (int b = 0; b < dst->nreg; b++)
            dst->chain = kv_chain(dst->chain, dst->tok + b * KV_BLOCK);
    }
    return SS_OK;
}

/* ---- ubatch assembly ---- */

typedef struct ubuf {
    int cap, outcap, dim, vocab;
    int acap, aoutcap; /* what the arrays hold (kept between eng_compute calls, see ubuf_reserve) */
    int *tok, *pos, *out, *hid_row, *seqi;
    const int **blocks;
    const attn_spec_t **trk; /* dependency tracking per token (ubatch_t.trk) */
    float **trk_out;
    int ntrk;                /* tokens of the ubatch that are tracked */
    float *logits, *hid_all, *lse;
    int *argmax;
    unsigned char *want;
    int *want_off, *want_tok; /* [outcap + 1]; the token lists of rows with want 2 */
    int ntok_cap;
    int n, nout, nhid;
    seq_t **hseq; /* sequences owning hid rows */
    ubatch_t ub;  /* what went to the backend (kept while its pass is in flight) */
} ubuf_t;

/* The ubatches of one eng_compute: two when the backend splits forward into submit and finish and
 * the work takes more than one pass, so that the host fills the next while the last one runs. */
typedef struct upipe {
    ubuf_t *b;    /* the model's two kept buffers (m->ubufs) */
    int nb;       /* 1 or 2 */
    int fill;     /* the buffer being filled */
    int inflight; /* the buffer whose pass is submitted and not finished, or -1 */
} upipe_t;

static void ubuf_free(ubuf_t *u)
{
    free(u->tok); free(u->pos); free(u->out); free(u->hid_row); free(u->seqi);
    free(u->blocks); free(u->logits); free(u->hid_all); free(u->hseq); free(u->lse); free(u->argmax); free(u->want);
    free(u->want_off); free(u->want_tok); free(u->trk); free(u->trk_out);
    memset(u, 0, sizeof *u);
}

/* Room for a call of cap tokens and outcap output rows. The arrays stay with the model between
 * calls and grow when a call needs more: fresh multi-megabyte buffers on every call cost a page
 * fault per page written (the logits rows of every pass). */
static int ubuf_reserve(ubuf_t *u, const ss_llm_t *m, int cap, int outcap)
{
    if (u->tok && u->acap >= cap && u->aoutcap >= outcap && u->dim == m->cfg.dim &&
        u->vocab == m->cfg.vocab_size) {
        u->cap = cap, u->outcap = outcap;
        u->n = u->nout = u->nhid = u->ntrk = 0;
        return 0;
    }
    ubuf_free(u);
    u->cap = u->acap = cap;
    u->outcap = u->aoutcap = outcap;
    u->dim = m->cfg.dim;
    u->vocab = m->cfg.vocab_size;
    size_t c = (size_t)cap;
    u->tok = malloc(c * sizeof(int)); u->pos = malloc(c * sizeof(int)); u->out = malloc(c * sizeof(int));
    u->hid_row = malloc(c * sizeof(int)); u->seqi = malloc(c * sizeof(int));
    u->blocks = malloc(c * sizeof(int *)); u->hseq = malloc(c * sizeof(seq_t *));
    u->trk = malloc(c * sizeof *u->trk); u->trk_out = malloc(c * sizeof *u->trk_out);
    u->logits = malloc((size_t)outcap * u->vocab * sizeof(float));
    u->lse = malloc((size_t)outcap * sizeof(float));
    u->argmax = malloc((size_t)outcap * sizeof(int));
    u->want = malloc((size_t)outcap);
    u->want_off = malloc(((size_t)outcap + 1) * sizeof(int));
    u->hid_all = malloc(c * u->dim * sizeof(float));
    return u->tok && u->pos && u->out && u->hid_row && u->seqi && u->blocks && u->hseq && u->logits && u->hid_all &&
                   u->lse && u->argmax && u->want && u->want_off && u->trk && u->trk_out
               ? 0 : -1;
}

/* Tokens and output rows per pass for a call needing need_tok tokens and need_out rows. */
static void ubuf_size(const ss_llm_t *m, long need_out, long need_tok, int *cap, int *outcap)
{
    *cap = (int)SS_MAX(1, SS_MIN((long)m->ubatch, need_tok));
    size_t budget = (size_t)64 << 20; /* bytes of logits per pass */
    *outcap = (int)SS_MAX(4, SS_MIN((size_t)*cap, budget / ((size_t)m->cfg.vocab_size * 4)));
    *outcap = (int)SS_MIN((long)*outcap, SS_MAX(need_out, 1));
}

void eng_free(ss_llm_t *m)
{
    for (int i = 0; m->ubufs && i < 2; i++)
        ubuf_free(&m->ubufs[i]);
    free(m->ubufs);
    m->ubufs = NULL;
}

/* Which logits each output row's consumer reads: argmax only (0), the whole row (1), or the
 * tokens its sequence lists (2, with want_off/want_tok). Returns 1 if some row lists tokens,
 * 0 if none, -1 out of memory. */
static int plan_wants(seq_t **seqs, ubuf_t *u)
{
    int any = 0, nt = 0;
    for (int t = 0; t < u->n; t++) {
        int o = u->out[t];
        if (o < 0)
            continue;
        const seq_t *s = seqs[u->seqi[t]];
        u->want[o] = !s->argmax_only;
        u->want_off[o] = nt; /* rows are numbered in token order */
        if (!s->out_toks)
            continue;
        int k;
        /* want_tok is NULL until the first row lists tokens (no pointer arithmetic on NULL) */
        while ((k = s->out_toks(s, u->pos[t], u->want_tok ? u->want_tok + nt : NULL, u->ntok_cap - nt)) >
               u->ntok_cap - nt) {
            int nc = SS_MAX(2 * u->ntok_cap, nt + k + 64);
            int *p = realloc(u->want_tok, (size_t)nc * sizeof *p);
            if (!p)
                return -1;
            u->want_tok = p, u->ntok_cap = nc;
        }
        u->want[o] = 2;
        nt += k;
        any = 1;
    }
    u->want_off[u->nout] = nt;
    return any;
}

/* Hands a computed ubatch's outputs to its sequences (on_out, pooled hidden states), advances their
 * computed counts and registers their full blocks; the buffer is then empty. */
static void take_outputs(ss_llm_t *m, seq_t **seqs, ubuf_t *u)
{
    for (int t = 0; t < u->n; t++) {
        seq_t *s = seqs[u->seqi[t]];
        s->ncomp = u->pos[t] + 1;
        if (u->out[t] >= 0 && s->on_out) {
            m->cur_lse = u->lse[u->out[t]];
            m->cur_argmax = u->argmax[u->out[t]];
            s->on_out(m, s, u->pos[t], u->logits + (size_t)u->out[t] * u->vocab);
            m->cur_lse = NAN;
            m->cur_argmax = -1;
        }
    }
    for (int h = 0; h < u->nhid; h++)
        for (int i = 0; i < u->dim; i++)
            u->hseq[h]->hid_sum[i] += u->hid_all[(size_t)h * u->dim + i];
    for (int t = 0; t < u->n; t++)
        if (t == u->n - 1 || u->seqi[t + 1] != u->seqi[t])
            seq_register(m, seqs[u->seqi[t]]);
    u->n = u->nout = u->nhid = u->ntrk = 0;
}

/* Waits for the pass in flight, if any, and takes its outputs. */
static ss_err_t drain(ss_llm_t *m, seq_t **seqs, upipe_t *P, char *err, size_t errsz)
{
    if (P->inflight < 0)
        return SS_OK;
    ubuf_t *u = &P->b[P->inflight];
    P->inflight = -1;
    ss_err_t rc = m->be->finish(m->be_ctx, &u->ub, err, errsz);
    if (rc) {
        u->n = u->nout = u->nhid = u->ntrk = 0;
        return rc;
    }
    take_outputs(m, seqs, u);
    return SS_OK;
}

/* Sends the filled ubatch to the backend: computed at once, or (two buffers) submitted, after which
 * the previous pass is finished and the other buffer is filled next. */
static ss_err_t flush(ss_llm_t *m, seq_t **seqs, upipe_t *P, char *err, size_t errsz)
{
    ubuf_t *u = &P->b[P->fill];
    if (!u->n)
        return SS_OK;
    /* block tables may have been reallocated while filling: take pointers now */
    for (int t = 0; t < u->n; t++)
        u->blocks[t] = seqs[u->seqi[t]]->blocks;
    memset(u->hid_all, 0, (size_t)u->nhid * u->dim * sizeof(float));
    for (int o = 0; o < u->nout; o++)
        u->lse[o] = NAN, u->argmax[o] = -1;
    int lists = plan_wants(seqs, u);
    if (lists < 0)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    u->ub = (ubatch_t){u->n, u->tok, u->pos, u->blocks, u->out, u->nout, u->logits, NULL,
                       u->nhid ? u->hid_row : NULL, u->hid_all, u->lse, u->argmax, u->want,
                       lists ? u->want_off : NULL, lists ? u->want_tok : NULL,
                       u->ntrk ? u->trk : NULL, u->ntrk ? u->trk_out : NULL};
    m->st.forward_calls++;
    m->st.tokens_computed += u->n;
    if (P->nb < 2) {
        ss_err_t rc = m->be->forward(m->be_ctx, &u->ub, err, errsz);
        if (rc)
            return rc;
        take_outputs(m, seqs, u);
        return SS_OK;
    }
    ss_err_t rc = m->be->submit(m->be_ctx, &u->ub, err, errsz);
    if (rc) {
        u->n = u->nout = u->nhid = u->ntrk = 0;
        return rc;
    }
    if (P->inflight >= 0) /* finish the previous pass while this one runs */
        rc = drain(m, seqs, P, err, errsz);
    P->inflight = P->fill;
    P->fill = 1 - P->fill;
    return rc;
}

/* Runs the pending tokens (up to limit when set) of seqs[0..n); every pass is finished on return. */
static ss_err_t run_pending(ss_llm_t *m, seq_t **seqs, int n, upipe_t *P, char *err, size_t errsz)
{
    ss_err_t rc = SS_OK;
    for (int i = 0; i < n && !rc; i++) {
        seq_t *s = seqs[i];
        seq_lookup(m, s);
        int end = s->limit ? SS_MIN(s->limit, s->ntok) : s->ntok;
        int hrow = -1;
        for (int p = s->ncomp; p < end && !rc; p++) {
            int wants = p >= s->out_from;
            ubuf_t *u = &P->b[P->fill];
            if (u->n == u->cap || (wants && u->nout == u->outcap)) {
                if ((rc = flush(m, seqs, P, err, errsz)))
                    break;
                u = &P->b[P->fill];
                hrow = -1;
            }
            if ((rc = ensure_blocks(m, s, p + 1, err, errsz)))
                break;
            if (s->hid_sum && hrow < 0) {
                hrow = u->nhid++;
                u->hseq[hrow] = s;
            }
            int t = u->n++;
            u->tok[t] = s->tok[p];
            u->pos[t] = p;
            u->seqi[t] = i;
            u->out[t] = wants ? u->nout++ : -1;
            int tr = s->trk && p >= s->trk_from && p < s->trk_from + s->trk_cap;
            u->trk[t] = tr ? s->trk : NULL;
            u->trk_out[t] = tr ? s->trk_out + (size_t)(p - s->trk_from) * s->trk_stride : NULL;
            u->ntrk += tr;
            u->hid_row[t] = s->hid_sum ? hrow : -1;
        }
    }
    if (!rc)
        rc = flush(m, seqs, P, err, errsz);
    if (rc) { /* still wait for a pass in flight, so the backend is idle; the first error wins */
        char e2[SS_ERRSZ];
        drain(m, seqs, P, e2, sizeof e2);
        P->b[P->fill].n = P->b[P->fill].nout = P->b[P->fill].nhid = P->b[P->fill].ntrk = 0;
        return rc;
    }
    return drain(m, seqs, P, err, errsz);
}

/* Leaders compute prefixes shared by >= 2 sequences of this call (not yet cached). */
typedef struct hent {
    uint64_t h;
    int seq, depth;
} hent_t;

static int hent_cmp(const void *a, const void *b)
{
    const hent_t *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return x->seq - y->seq;
}

static ss_err_t shared_prefixes(ss_llm_t *m, seq_t **seqs, int n, upipe_t *u, char *err, size_t errsz)
{
    size_t ne = 0, cap = 0;
    hent_t *e = NULL;
    for (int i = 0; i < n; i++) {
        seq_t *s = seqs[i];
        /* only sequences whose KV so far is whole registered blocks (none computed yet, or
         * taken from the cache, or a prefill chunk that ended on a block boundary) */
        if (!s->reuse || s->noreg || s->ncomp != s->nreg * KV_BLOCK || s->nblocks != s->nreg)
            continue;
        seq_lookup(m, s);
        uint64_t ch = s->chain;
        int r = reusable(s);
        for (int d = s->nreg; (d + 1) * KV_BLOCK <= r; d++) {
            ch = kv_chain(ch, s->tok + d * KV_BLOCK);
            if (ne == cap) {
                cap = cap ? 2 * cap : 256;
                hent_t *p = realloc(e, cap * sizeof *p);
                if (!p) {
                    free(e);
                    return SS_OK; /* an optimisation only */
                }
                e = p;
            }
            e[ne++] = (hent_t){ch, i, d + 1};
        }
    }
    if (ne)
        qsort(e, ne, sizeof *e, hent_cmp);
    size_t nn = n > 0 ? (size_t)n : 1;
    int *depth = calloc(nn, sizeof *depth), nlead = 0;
    int *olim = calloc(nn, sizeof *olim); /* the leaders' own limits (a prefill chunk), restored */
    seq_t **lead = calloc(nn, sizeof *lead);
    if (!depth || !lead || !olim)
        goto done;
    for (size_t a = 0, b; a < ne; a = b) {
        for (b = a; b < ne && e[b].h == e[a].h; b++)
            ;
        if (b - a >= 2) /* shared: every member's shared depth reaches at least this */
            for (size_t k = a; k < b; k++)
                depth[e[k].seq] = SS_MAX(depth[e[k].seq], e[k].depth);
    }
    /* one leader per distinct deepest shared prefix (the first sequence that has it) */
    for (size_t k = 0; k < ne; k++) {
        int i = e[k].seq;
        if (depth[i] != e[k].depth || depth[i] == 0)
            continue;
        if (k == 0 || e[k - 1].h != e[k].h) { /* first in its hash run: the leader */
            int lim = depth[i] * KV_BLOCK;
            olim[nlead] = seqs[i]->limit;
            seqs[i]->limit = olim[nlead] ? SS_MIN(olim[nlead], lim) : lim;
            lead[nlead++] = seqs[i];
        }
    }
    ss_err_t rc = nlead ? run_pending(m, lead, nlead, u, err, errsz) : SS_OK;
    for (int i = 0; i < nlead; i++)
        lead[i]->limit = olim[i];
    free(depth);
    free(olim);
    free(lead);
    free(e);
    return rc;
done:
    free(depth);
    free(olim);
    free(lead);
    free(e);
    return SS_OK;
}

/* Blended prefills (KV_REUSE = 'chunks') of the sequences that have one pending: each takes its
 * leading blocks from the prefix cache first, like any prompt. */
static ss_err_t blend_pending(ss_llm_t *m, seq_t **seqs, int n, char *err, size_t errsz)
{
    for (int i = 0; i < n; i++) {
        seq_t *s = seqs[i];
        if (!s->blend)
            continue;
        seq_lookup(m, s);
        ss_err_t rc = kvb_prefill(m, s, err, errsz);
        if (rc)
            return rc;
    }
    return SS_OK;
}

ss_err_t eng_compute(ss_llm_t *m, seq_t **seqs, int n, char *err, size_t errsz)
{
    long need_out = 0, need_tok = 0;
    for (int i = 0; i < n; i++)
        if (seqs[i]->ntok > m->cfg.ctx_len)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "sequence of %d tokens exceeds the context length %d",
                             seqs[i]->ntok, m->cfg.ctx_len);
    ss_err_t brc = blend_pending(m, seqs, n, err, errsz);
    if (brc)
        return brc;
    for (int i = 0; i < n; i++) {
        const seq_t *s = seqs[i];
        need_tok += SS_MAX(0, s->ntok - s->ncomp);
        need_out += SS_MAX(0, s->ntok - SS_MAX(s->out_from, s->ncomp));
    }
    if (!m->ubufs && !(m->ubufs = calloc(2, sizeof *m->ubufs)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    upipe_t P = {.b = m->ubufs, .nb = 1, .fill = 0, .inflight = -1};
    int cap, outcap;
    ubuf_size(m, need_out, need_tok, &cap, &outcap);
    int bad = ubuf_reserve(&P.b[0], m, cap, outcap);
    /* passes overlap when the work takes more than one and the backend can split forward */
    if (!bad && m->be->submit && m->be->finish && (need_tok > cap || need_out > outcap)) {
        P.nb = 2;
        bad = ubuf_reserve(&P.b[1], m, cap, outcap);
    }
    if (bad) {
        eng_free(m);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory for a batch of %d tokens", m->ubatch);
    }
    ss_err_t rc = m->prefix_on ? shared_prefixes(m, seqs, n, &P, err, errsz) : SS_OK;
    if (!rc)
        rc = run_pending(m, seqs, n, &P, err, errsz);
    return rc;
}
