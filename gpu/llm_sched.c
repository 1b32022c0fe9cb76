/*
 * llm_sched.c — continuous batching: requests are submitted at any time
 * (ss_llm_submit) and advanced one scheduling step at a time (ss_llm_step).
 *
 * A step runs one eng_compute over: one token for every GENERATE sequence that is
 * decoding, plus the prompts of waiting requests in submission order, as far as the
 * step's token budget allows (a prompt larger than what is left is prefilled in
 * block-aligned chunks over several steps, so a huge prompt never stalls the
 * decoders). Prompts that completed in the step then fork their CHOOSE/SCORE answers
 * of several tokens (computed in a second pass of the same step), GENERATE picks its
 * next token, and every finished request is completed: result filled, KV released
 * to the prefix cache, callback called. ss_llm_run (llm_run.c) is the same machinery
 * with no budget: submit all, step until done.
 *
 * Owns: the in-flight list (m->sched) and each request's state (rq_t, llm_run.c).
 * Requests and their strings are borrowed from the submitter until its callback.
 */
#include "llm_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PH_PREFILL, PH_DECODE, PH_DONE };

typedef struct sreq {
    rq_t q;
    ss_llm_done_fn done;
    void *ctx;
    int phase;    /* PH_* */
    int in_step;  /* its prompt (or a chunk of it) is in the current step */
} sreq_t;

struct sched {
    sreq_t **a;   /* in flight, in submission order */
    int n, cap;
    seq_t **seqs; /* scratch: the sequences of a step */
    int scap;
};

static sched_t *sched_get(ss_llm_t *m)
{
    if (!m->sched)
        m->sched = calloc(1, sizeof *m->sched);
    return m->sched;
}

ss_err_t ss_llm_submit(ss_llm_t *m, const ss_infer_req_t *req, ss_infer_res_t *res, ss_llm_done_fn done, void *ctx,
                       char *err, size_t errsz)
{
    sched_t *S = sched_get(m);
    if (!S)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (S->n == S->cap) {
        int nc = S->cap ? 2 * S->cap : 64;
        sreq_t **p = realloc(S->a, (size_t)nc * sizeof *p);
        if (!p)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        S->a = p;
        S->cap = nc;
    }
    sreq_t *r = calloc(1, sizeof *r);
    if (!r)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    r->q.r = req;
    r->q.res = res;
    r->done = done;
    r->ctx = ctx;
    if (rq_setup(m, &r->q)) {
        rq_free(m, &r->q);
        free(r);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory preparing a request of %d bytes",
                         req->prompt ? (int)strlen(req->prompt) : 0);
    }
    r->phase = r->q.done ? PH_DONE : PH_PREFILL; /* a request that cannot run completes at the next step */
    S->a[S->n++] = r;
    return SS_OK;
}

int ss_llm_inflight(const ss_llm_t *m) { return m->sched ? m->sched->n : 0; }

int ss_llm_decoding(const ss_llm_t *m)
{
    int k = 0;
    for (int i = 0; m->sched && i < m->sched->n; i++)
        k += m->sched->a[i]->phase == PH_DECODE;
    return k;
}

/* ---- completion ---- */

static void complete(ss_llm_t *m, sreq_t *r, int rc)
{
    if (rc == SS_OK)
        rq_finish(m, &r->q);
    rq_free(m, &r->q); /* KV blocks go back; registered ones stay reusable */
    if (r->done)
        r->done(r->ctx, r->q.res, rc);
    free(r);
}

/* Completes every PH_DONE request (submission order kept). The list is compacted before any
 * callback runs, since a callback may submit. */
static void complete_done(ss_llm_t *m, sched_t *S)
{
    int nd = 0;
    for (int i = 0; i < S->n; i++)
        nd += S->a[i]->phase == PH_DONE;
    if (!nd)
        return;
    sreq_t **fin = malloc((size_t)nd * sizeof *fin);
    if (!fin) { /* no memory for the list: one at a time */
        for (int i = 0; i < S->n; i++)
            if (S->a[i]->phase == PH_DONE) {
                sreq_t *r = S->a[i];
                memmove(&S->a[i], &S->a[i + 1], (size_t)(S->n - i - 1) * sizeof *S->a);
                S->n--;
                complete(m, r, SS_OK);
                i = -1; /* the list may have changed */
            }
        return;
    }
    int k = 0, f = 0;
    for (int i = 0; i < S->n; i++) {
        sreq_t *r = S->a[i];
        if (r->phase == PH_DONE)
            fin[f++] = r;
        else
            S->a[k++] = r;
    }
    S->n = k;
    for (int i = 0; i < nd; i++)
        complete(m, fin[i], SS_OK);
    free(fin);
}

/* A failed step fails every request in flight with rc (message err). */
static void fail_all(ss_llm_t *m, sched_t *S, int rc, const char *err)
{
    int n = S->n;
    S->n = 0; /* callbacks may submit again */
    sreq_t **a = S->a;
    S->a = NULL;
    S->cap = 0;
    for (int i = 0; i < n; i++) {
        ss_infer_res_t *res = a[i]->q.res;
        res->status = rc;
        free(res->error);
        res->error = ss_strdup(err && *err ? err : ss_err2str((ss_err_t)rc));
        complete(m, a[i], rc);
    }
    free(a);
}

void sched_free(ss_llm_t *m)
{
    if (!m->sched)
        return;
    while (m->sched->n) /* (a callback may have submitted again) */
        fail_all(m, m->sched, SS_ERR_INTERNAL, "the model was closed with the request in flight");
    free(m->sched->a);
    free(m->sched->seqs);
    free(m->sched);
    m->sched = NULL;
}

/* ---- one step ---- */

static int seqs_room(sched_t *S, int need)
{
    if (need <= S->scap)
        return 0;
    seq_t **p = realloc(S->seqs, (size_t)need * sizeof *p);
    if (!p)
        return -1;
    S->seqs = p;
    S->scap = need;
    return 0;
}

/* Adds waiting prompts to seqs[*ns] within the budget (used: tokens already in the step).
 * Returns the number of prompt tokens scheduled. */
static long add_prefill(ss_llm_t *m, sched_t *S, long budget, long used, int *ns)
{
    long pre = 0;
    int npre = 0;
    for (int i = 0; i < S->n; i++) {
        sreq_t *r = S->a[i];
        if (r->phase != PH_PREFILL)
            continue;
        seq_t *s = &r->q.seq;
        s->limit = 0;
        eng_lookup(m, s); /* cached blocks cost nothing: do not charge them */
        long pend = s->ntok - s->ncomp, room = budget - used - pre;
        if (s->blend) /* a blended prefill runs whole in eng_compute (kvblend.c): it is not cut */
            pend = SS_MIN(pend, 1);
        if (room < KV_BLOCK) {
            if (npre)
                break;
            room = KV_BLOCK; /* every step makes some progress on the oldest prompt */
        }
        if (pend > room) { /* chunk: end on a block boundary so it can be registered */
            int lim = (int)((s->ncomp + room) / KV_BLOCK * KV_BLOCK);
            s->limit = lim > s->ncomp ? lim : s->ncomp + (int)room;
            pend = s->limit - s->ncomp;
        }
        S->seqs[(*ns)++] = s;
        r->in_step = 1;
        pre += pend;
        npre++;
        if (s->limit)
            break; /* the budget is spent */
    }
    return pre;
}

/* After the main pass: prompts that completed move on; forks of CHOOSE/SCORE answers run in a
 * second pass; GENERATE takes its next token. */
static ss_err_t after_pass(ss_llm_t *m, sched_t *S, char *err, size_t errsz)
{
    int nf = 0;
    ss_err_t rc = SS_OK;
    for (int i = 0; i < S->n && !rc; i++) {
        sreq_t *r = S->a[i];
        if (!r->in_step)
            continue;
        r->in_step = 0;
        r->q.seq.limit = 0;
        if (r->q.seq.ncomp < r->q.seq.ntok)
            continue; /* a chunk of its prompt ran; the rest comes in later steps */
        switch (r->q.r->kind) {
        case SS_INFER_CHOOSE:
        case SS_INFER_SCORE:
            rc = rq_fork_choices(m, &r->q, S->seqs, &nf, err, errsz);
            r->phase = PH_DONE;
            break;
        case SS_INFER_GENERATE:
            r->phase = r->q.r->prefill_only ? PH_DONE : PH_DECODE; /* a prefill decodes nothing */
            break;
        case SS_INFER_EMBED:
            r->phase = PH_DONE;
            break;
        }
    }
    if (!rc && nf)
        rc = eng_compute(m, S->seqs, nf, err, errsz);
    for (int i = 0; i < S->n && !rc; i++) {
        sreq_t *r = S->a[i];
        if (r->phase == PH_DECODE && rq_gen_advance(m, &r->q))
            r->phase = PH_DONE;
    }
    return rc;
}

ss_err_t ss_llm_step(ss_llm_t *m, int max_tokens, char *err, size_t errsz)
{
    sched_t *S = m->sched;
    if (!S)
        return SS_OK;
    complete_done(m, S); /* requests that could not run */
    if (!S->n)
        return SS_OK;
    long budget = max_tokens < 0 ? LONG_MAX / 4 : max_tokens == 0 ? m->ubatch : max_tokens;
    int need = 0;
    for (int i = 0; i < S->n; i++)
        need += 1 + S->a[i]->q.nch;
    if (seqs_room(S, need)) {
        fail_all(m, S, SS_ERR_NOMEM, "out of memory scheduling a step");
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory scheduling a step");
    }
    int ns = 0, ndec = 0;
    for (int i = 0; i < S->n; i++)
        if (S->a[i]->phase == PH_DECODE) /* every decoder advances one token in every step */
            S->seqs[ns++] = &S->a[i]->q.seq;
    ndec = ns;
    long pre = add_prefill(m, S, budget, ndec, &ns);
    int64_t t0 = ss_now_ns();
    ss_err_t rc = eng_compute(m, S->seqs, ns, err, errsz);
    int64_t dt = ss_now_ns() - t0;
    if (pre > 0) {
        m->st.prompt_ns += dt;
    } else {
        m->st.decode_ns += dt;
        m->st.decode_tokens += ndec;
    }
    if (!rc)
        rc = after_pass(m, S, err, errsz);
    m->st.steps++;
    if (rc) {
        fail_all(m, S, rc, err);
        return rc;
    }
    complete_done(m, S);
    return SS_OK;
}
