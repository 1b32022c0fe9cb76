/*
 * llm_run.c — the requests: turns CHOOSE, SCORE, GENERATE and EMBED requests into
 * sequences (rq_setup), consumes their logits, decides when they are finished and
 * fills the results (rq_finish). The step scheduler (llm_sched.c) drives them;
 * ss_llm_run submits a whole batch to it and steps until every request is done.
 * Also the tokenizer entry points and the low-level helpers for tests (greedy
 * decoding, last-position logits).
 *
 * CHOOSE/SCORE: one sequence over the prompt gives every answer's first token;
 * answers of several tokens get a sequence prompt+answer[0..k-1) scored by teacher
 * forcing (its prompt blocks come from the prefix cache). Probabilities are
 * normalised over the answers; SCORE is the expected value over score_min..max.
 */
#include "llm_internal.h"
#include "ss_chat.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- tokenizer API ---------------- */

static int encode(ss_llm_t *m, const char *text, int add_bos, int cont, int **toks, int *n)
{
    int cap = 0;
    *toks = NULL;
    *n = 0;
    if (add_bos && m->cfg.add_bos) {
        *toks = malloc(64 * sizeof(int));
        if (!*toks)
            return -1;
        cap = 64;
        (*toks)[(*n)++] = m->cfg.bos;
    }
    if (tok_encode(&m->tok, text ? text : "", text ? strlen(text) : 0, cont, toks, n, &cap)) {
        free(*toks);
        *toks = NULL;
        return -1;
    }
    return 0;
}

int ss_llm_tokenize(ss_llm_t *m, const char *text, int add_bos, int *out, int cap)
{
    int *t, n;
    if (encode(m, text, add_bos, 0, &t, &n))
        return -1;
    if (out)
        memcpy(out, t, (size_t)SS_MIN(n, cap) * sizeof(int));
    free(t);
    return n;
}

int ss_llm_count_tokens(ss_llm_t *m, const char *text) { return ss_llm_tokenize(m, text, 0, NULL, 0); }

char *ss_llm_detokenize(ss_llm_t *m, const int *toks, int n)
{
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; i < n; i++)
        tok_decode_piece(&m->tok, toks[i], i ? toks[i - 1] : -1, &b);
    return ss_buf_take(&b);
}

const char *ss_llm_token_text(ss_llm_t *m, int id) { return id >= 0 && id < m->tok.n ? m->tok.text[id] : NULL; }

/* ---------------- math helpers ---------------- */

/* The first index of the largest value (NaNs never chosen unless x[0] is one: then 0), as the
 * plain loop "if (x[i] > x[b]) b = i" gives it, in 8 independent lanes (a 128k-entry vocabulary
 * row is a few percent of a decode step when one dependent chain walks it). */
static int argmax(const float *x, int n)
{
    if (n <= 0 || x[0] != x[0])
        return 0;
    float m[8];
    int b[8];
    for (int j = 0; j < 8; j++)
        m[j] = -INFINITY, b[j] = -1;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            if (x[i + j] > m[j])
                m[j] = x[i + j], b[j] = i + j;
    for (; i < n; i++)
        if (x[i] > m[i & 7])
            m[i & 7] = x[i], b[i & 7] = i;
    int best = -1;
    for (int j = 0; j < 8; j++) /* each lane holds its first index of its maximum */
        if (b[j] >= 0 && (best < 0 || m[j] > m[best] || (m[j] == m[best] && b[j] < b[best])))
            best = j;
    return best < 0 ? 0 : b[best];
}

/* log-sum-exp of x (max subtracted) */
static double lse(const float *x, int n)
{
    float mx = x[argmax(x, n)];
    double s = 0;
    for (int i = 0; i < n; i++)
        s += exp((double)(x[i] - mx));
    return mx + log(s);
}

/* log-sum-exp of the logits an on_out callback was given: the backend's when it computed one
 * (CUDA, on the device), else computed here. */
static double row_lse(const ss_llm_t *m, const float *logits)
{
    return isnan(m->cur_lse) ? lse(logits, m->cfg.vocab_size) : m->cur_lse;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int sample(const float *logits, int n, float temp, uint64_t *rng)
{
    float mx = logits[argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)(logits[i] - mx) / temp);
    double r = (double)(splitmix(rng) >> 11) / 9007199254740992.0 * sum, c = 0;
    for (int i = 0; i < n; i++) {
        c += exp((double)(logits[i] - mx) / temp);
        if (c > r)
            return i;
    }
    return n - 1;
}

/* ---------------- per-request state ---------------- */

static void on_prompt_out(ss_llm_t *m, seq_t *s, int pos, const float *logits)
{
    rq_t *q = s->user;
    (void)pos;
    double l = row_lse(m, logits);
    for (int c = 0; c < q->nch; c++)
        if (q->ch[c].n > 0)
            q->ch[c].lp += logits[q->ch[c].tok[0]] - l;
}

static void on_choice_out(ss_llm_t *m, seq_t *s, int pos, const float *logits)
{
    rq_t *q = s->user;
    choice_t *c = &q->ch[s->user_i];
    int k = pos - q->np + 1; /* answer token predicted at this position */
    if (k >= 1 && k < c->n)
        c->lp += logits[c->tok[k]] - row_lse(m, logits);
}

/* The logits the two callbacks above read, so a backend can return just these (see out_toks). */
static int prompt_toks(const seq_t *s, int pos, int *toks, int cap)
{
    const rq_t *q = s->user;
    int k = 0;
    (void)pos;
    for (int c = 0; c < q->nch; c++)
        if (q->ch[c].n > 0) {
            if (k < cap)
                toks[k] = q->ch[c].tok[0];
            k++;
        }
    return k;
}

static int choice_toks(const seq_t *s, int pos, int *toks, int cap)
{
    const rq_t *q = s->user;
    const choice_t *c = &q->ch[s->user_i];
    int k = pos - q->np + 1;
    if (k < 1 || k >= c->n)
        return 0;
    if (cap >= 1)
        toks[0] = c->tok[k];
    return 1;
}

/* GENERATE with json_schema: the next token as the grammar allows it (grammar.c), keeping
 * enough of max_tokens and of the context to close the value. */
static int gram_pick(ss_llm_t *m, rq_t *q, const seq_t *s, const float *logits)
{
    int maxt = q->r->max_tokens > 0 ? q->r->max_tokens : 64;
    int left = SS_MAX(0, SS_MIN(maxt - q->ngen - 1, m->cfg.ctx_len - 1 - s->ntok));
    int t = gram_seq_pick(m, q->gram, logits, q->r->temperature > 0 ? -1 : m->cur_argmax, q->r->temperature,
                          &q->rng, left);
    if (t < 0) {
        q->res->status = SS_ERR_INTERNAL;
        free(q->res->error);
        q->res->error = ss_strdup("constrained decoding: no token of the vocabulary fits the JSON schema here");
    }
    return t;
}

/* The k best tokens of logits (k <= vocab), best first, ties to the lower id. */
static void top_k(const float *logits, int v, int k, int *best)
{
    int n = 0;
    for (int i = 0; i < v; i++) {
        if (n == k && !(logits[i] > logits[best[k - 1]]))
            continue;
        int p = n < k ? n++ : k - 1;
        while (p > 0 && logits[i] > logits[best[p - 1]]) {
            best[p] = best[p - 1];
            p--;
        }
        best[p] = i;
    }
}

/* GENERATE with on_token: reports the token just picked (not EOS/end of turn), with its top
 * alternatives when top_logprobs > 0 (best[0..k) and their texts). */
static void report_token(ss_llm_t *m, rq_t *q, seq_t *s, const float *logits, double l, const int *best, int k)
{
    if (q->next < 0 || q->next == m->cfg.eos || q->next == m->eot)
        return;
    int prev = s->tok[s->ntok - 1];
    ss_buf_t piece = SS_BUF_INIT, alt = SS_BUF_INIT;
    tok_decode_piece(&m->tok, q->next, prev, &piece);
    const char *texts[64];
    float lps[64];
    size_t offs[64];
    k = SS_MIN(k, 64);
    for (int j = 0; j < k; j++) { /* all pieces in one buffer, terminated, then pointed into */
        tok_decode_piece(&m->tok, best[j], prev, &alt);
        offs[j] = alt.len;
        ss_buf_putc(&alt, 0);
        lps[j] = (float)(logits[best[j]] - l);
    }
    for (int j = 0, at = 0; j < k; j++) {
        texts[j] = alt.data ? alt.data + at : "";
        at = (int)offs[j] + 1;
    }
    ss_infer_token_t t = {.id = q->next, .text = piece.data ? piece.data : "", .len = piece.len,
                          .logprob = k > 0 ? q->last_lp : 0, .ntop = k, .top_text = texts, .top_logprob = lps};
    q->r->on_token(q->r->on_token_ctx, &t);
    ss_buf_free(&piece);
    ss_buf_free(&alt);
}

static void on_gen_out(ss_llm_t *m, seq_t *s, int pos, const float *logits)
{
    rq_t *q = s->user;
    if (pos != s->ntok - 1)
        return;
    int v = m->cfg.vocab_size;
    if (q->gram)
        q->next = gram_pick(m, q, s, logits);
    else if (q->r->temperature > 0)
        q->next = sample(logits, v, q->r->temperature, &q->rng);
    else /* the backend's argmax when it computed one (then the logits may not have been copied) */
        q->next = m->cur_argmax >= 0 ? m->cur_argmax : argmax(logits, v);
    if (q->next < 0) /* the grammar found no token (the request fails) */
        return;
    if (q->r->top_logprobs <= 0) {
        if (q->r->on_token)
            report_token(m, q, s, logits, 0, NULL, 0);
        return;
    }
    double l = row_lse(m, logits);
    q->last_lp = (float)(logits[q->next] - l);
    int first = q->ngen == 0 && !q->res->top_tokens;
    if (!first && !q->r->on_token)
        return;
    int k = SS_MIN(q->r->top_logprobs, v);
    int *best = malloc((size_t)k * sizeof *best);
    if (!best)
        return;
    top_k(logits, v, k, best);
    if (first) {
        q->res->top_tokens = calloc((size_t)k, sizeof(char *));
        q->res->top_logprobs = malloc((size_t)k * sizeof(float));
        for (int j = 0; j < k && q->res->top_tokens && q->res->top_logprobs; j++) {
            ss_buf_t t = SS_BUF_INIT;
            tok_decode_piece(&m->tok, best[j], s->tok[s->ntok - 1], &t);
            q->res->top_tokens[j] = ss_buf_take(&t);
            q->res->top_logprobs[j] = (float)(logits[best[j]] - l);
            q->res->ntop = j + 1;
        }
    }
    if (q->r->on_token)
        report_token(m, q, s, logits, l, best, k);
    free(best);
}

static int set_fail(rq_t *q, int code, const char *msg)
{
    q->res->status = code;
    free(q->res->error);
    q->res->error = ss_strdup(msg);
    q->done = 1;
    return 0;
}

/* Tokens a prefill-only request computes: its full KV blocks (what the prefix cache can keep),
 * or the whole prompt when it is shorter than one block. */
static int prefill_len(int np)
{
    return np >= KV_BLOCK ? np / KV_BLOCK * KV_BLOCK : np;
}

/* SCORE answers are the decimal strings of score_min..score_max. */
static int setup_choices(ss_llm_t *m, rq_t *q)
{
    const ss_infer_req_t *r = q->r;
    int score = r->kind == SS_INFER_SCORE;
    int lo = r->score_min, hi = r->score_max;
    if (score && (hi < lo || hi - lo > 1000))
        return set_fail(q, SS_ERR_INVALID, "SCORE: score_max must be >= score_min (at most 1000 values)");
    if (!score && (r->nchoices <= 0 || !r->choices))
        return set_fail(q, SS_ERR_INVALID, "CHOOSE needs at least one answer");
    q->nch = score ? hi - lo + 1 : r->nchoices;
    q->ch = calloc((size_t)q->nch, sizeof *q->ch);
    if (!q->ch)
        return -1;
    /* in the chat form an answer starts the assistant's turn: " yes" is scored as "yes" (as " yes"
     * after [INST] ... [/INST]), see ss_chat_answer */
    ss_chat_family_t chat = r->raw ? SS_CHAT_NONE : ss_llm_chat_family(m);
    ss_buf_t adj = SS_BUF_INIT;
    for (int c = 0; c < q->nch; c++) {
        char num[16];
        const char *a = score ? (snprintf(num, sizeof num, "%d", lo + c), num) : r->choices[c];
        if (chat != SS_CHAT_NONE) {
            ss_buf_reset(&adj);
            if (ss_chat_answer(chat, a, &adj) == SS_OK)
                a = ss_buf_cstr(&adj);
        }
        if (encode(m, a ? a : "", 0, 1, &q->ch[c].tok, &q->ch[c].n)) {
            ss_buf_free(&adj);
            return -1;
        }
    }
    ss_buf_free(&adj);
    return 0;
}

ss_err_t rq_fork_choices(ss_llm_t *m, rq_t *q, seq_t **all, int *ns, char *err, size_t errsz)
{
    for (int c = 0; c < q->nch; c++) {
        choice_t *ch = &q->ch[c];
        if (ch->n <= 1)
            continue;
        ss_err_t rc = seq_fork(m, &ch->seq, &q->seq, err, errsz);
        for (int i = 0; !rc && i < ch->n - 1; i++)
            if (seq_push(&ch->seq, ch->tok[i]))
                rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        if (rc)
            return rc;
        ch->seq.out_from = q->np;
        ch->seq.reuse = 1;
        ch->seq.on_out = on_choice_out;
        ch->seq.out_toks = choice_toks;
        ch->seq.user = q;
        ch->seq.user_i = c;
        all[(*ns)++] = &ch->seq;
    }
    return SS_OK;
}

/* ---------------- dependency tracking and forced answer tokens ---------------- */

/* Finds part (n bytes) in d at or after from; -1 when absent. */
static long find_part(const ss_buf_t *d, size_t from, const char *part, size_t n)
{
    if (n == 0)
        return (long)from;
    if (!d->data || from > d->len)
        return -1;
    const char *hit = memmem(d->data + from, d->len - from, part, n);
    return hit ? (long)(hit - d->data) : -1;
}

/* Places the request's chunks (prompt byte spans) on prompt token positions: the prompt's tokens
 * are decoded piece by piece, the request's text (its system and user parts when wrapped in a
 * chat template) is found in that text, and a byte maps to the token whose piece holds it. */
static int map_spans(ss_llm_t *m, rq_t *q, int wrapped, const size_t *bspan, int nspan, int **out)
{
    const ss_infer_req_t *r = q->r;
    ss_buf_t d = SS_BUF_INIT;
    int *end = malloc((size_t)q->np * sizeof *end);
    int *span = *out = malloc((size_t)SS_MAX(nspan, 1) * 2 * sizeof *span);
    if (!end || !span) {
        free(end);
        return -1;
    }
    for (int i = 0; i < q->np; i++) {
        tok_decode_piece(&m->tok, q->ptok[i], i ? q->ptok[i - 1] : -1, &d);
        end[i] = (int)d.len;
    }
    const char *p = r->prompt ? r->prompt : "";
    size_t len = strlen(p), sl = wrapped ? SS_MIN(r->system_len, len) : 0;
    long bs = find_part(&d, 0, p, sl);
    long bu = bs < 0 ? -1 : find_part(&d, (size_t)bs + sl, p + sl, len - sl);
    int bad = bu < 0;
    for (int c = 0; c < nspan && !bad; c++) {
        size_t a = SS_MIN(bspan[2 * c], len), b = SS_MIN(SS_MAX(bspan[2 * c + 1], a), len);
        /* tokens [holding byte a, after the one holding byte b - 1) */
        for (int k = 0; k < 2; k++) {
            size_t x = k ? (b > a ? b - 1 : a) : a;
            long dx = x < sl ? bs + (long)x : bu + (long)(x - sl);
            int t = 0;
            while (t < q->np && end[t] <= dx)
                t++;
            span[2 * c + k] = k ? (b > a ? SS_MIN(t + 1, q->np) : span[2 * c]) : t;
        }
    }
    free(end);
    ss_buf_free(&d);
    if (bad)
        return set_fail(q, SS_ERR_INVALID, "the prompt is not found in the decoded text of its tokens, so its "
                                           "chunks cannot be placed on tokens");
    return 0;
}

/* GENERATE with forced tokens and/or dependency tracking: pushes the forced tokens after the
 * prompt (they are prefilled with it) and sets up the recording of attention. */
static int setup_dep(ss_llm_t *m, rq_t *q, int wrapped)
{
    const ss_infer_req_t *r = q->r;
    const ss_llm_config_t *g = &m->cfg;
    int maxt = r->max_tokens > 0 ? r->max_tokens : 64;
    if (r->nforced < 0 || r->nforced >= maxt || (r->nforced && !r->forced))
        return set_fail(q, SS_ERR_INVALID, "forced answer tokens must be fewer than max_tokens");
    if (r->nforced && (r->temperature > 0 || r->json_schema))
        return set_fail(q, SS_ERR_INVALID, "forced answer tokens need greedy decoding without a JSON schema");
    if (q->np + r->nforced > g->ctx_len - 1)
        return set_fail(q, SS_ERR_INVALID, "prompt and forced answer tokens do not fit the context");
    if (r->ntrack > 0 && !m->be->track) {
        char msg[200];
        snprintf(msg, sizeof msg, "dependency tracking (MAINTAIN = 'dependency') needs the CPU backend; the %s "
                 "backend does not record attention", m->be->name);
        return set_fail(q, SS_ERR_UNSUPPORTED, msg);
    }
    if (r->nforced || r->ntrack > 0) {
        q->atok = malloc((size_t)(maxt + 1) * sizeof *q->atok);
        if (!q->atok)
            return -1;
    }
    for (int i = 0; i < r->nforced; i++) {
        int t = r->forced[i];
        if (t < 0 || t >= g->vocab_size || t == g->eos || t == m->eot)
            return set_fail(q, SS_ERR_INVALID, "forced answer token out of the vocabulary (or an end token)");
        tok_decode_piece(&m->tok, t, q->seq.tok[q->seq.ntok - 1], &q->text);
        if (seq_push(&q->seq, t))
            return -1;
        q->atok[q->natok++] = t;
    }
    q->ngen = r->nforced;
    q->seq.out_from = q->seq.ntok - 1;
    if (r->ntrack <= 0)
        return 0;
    if (map_spans(m, q, wrapped, r->track_span, r->ntrack, &q->span) || q->done)
        return q->done ? 0 : -1;
    int nl = r->track_layers > 0 ? SS_MIN(r->track_layers, g->n_layers) : (g->n_layers + 1) / 2;
    q->spec = (attn_spec_t){r->ntrack, q->span, g->n_layers - nl, 1.0f / (float)(g->n_heads * nl)};
    int stride = g->n_kv_heads * r->ntrack;
    q->mass = calloc((size_t)(maxt + 1) * (size_t)stride, sizeof *q->mass);
    if (!q->mass)
        return -1;
    q->seq.trk = &q->spec;
    q->seq.trk_out = q->mass;
    q->seq.trk_from = q->np - 1; /* answer token i is predicted at position np - 1 + i */
    q->seq.trk_cap = maxt + 1;
    q->seq.trk_stride = stride;
    return 0;
}

/* GENERATE with KV_REUSE = 'chunks': the chunks on token positions (made disjoint and ending
 * before the last token), blended by eng_compute (kvblend.c). */
static int setup_blend(ss_llm_t *m, rq_t *q, int wrapped)
{
    const ss_infer_req_t *r = q->r;
    if (m->be != &ss_llm_cpu_backend) {
        char msg[200];
        snprintf(msg, sizeof msg, "KV_REUSE = 'chunks' needs the CPU backend; the %s backend does not blend "
                 "cached chunks", m->be->name);
        return set_fail(q, SS_ERR_UNSUPPORTED, msg);
    }
    if (!r->chunk_span || !(r->recompute >= 0 && r->recompute <= 1))
        return set_fail(q, SS_ERR_INVALID, "KV_REUSE = 'chunks' needs chunk spans and a recompute fraction in 0..1");
    if (r->prefill_only)
        return set_fail(q, SS_ERR_INVALID, "a prefill-only request takes no chunks");
    if (map_spans(m, q, wrapped, r->chunk_span, r->nchunks, &q->bspan) || q->done)
        return q->done ? 0 : -1;
    int last = q->seq.ntok - 1, prev = 0;
    for (int c = 0; c < r->nchunks; c++) {
        int *sp = q->bspan + 2 * c;
        sp[0] = SS_MIN(SS_MAX(sp[0], prev), last);
        sp[1] = SS_MIN(SS_MAX(sp[1], sp[0]), last);
        prev = sp[1];
    }
    q->bspec = (blend_spec_t){r->nchunks, q->bspan, r->recompute};
    q->seq.blend = &q->bspec;
    return 0;
}

/* Does the piece of token t end a sentence? ('.', '!', '?' or a newline in it) */
static int ends_sentence(ss_llm_t *m, int t, int prev)
{
    ss_buf_t b = SS_BUF_INIT;
    tok_decode_piece(&m->tok, t, prev, &b);
    int e = b.data && strpbrk(ss_buf_cstr(&b), ".!?\n") != NULL;
    ss_buf_free(&b);
    return e;
}

/* The dependency record of a finished tracked answer into q->res->dep. */
static void finish_dep(ss_llm_t *m, rq_t *q)
{
    int nc = q->r->ntrack, nkv = m->cfg.n_kv_heads, n = q->natok;
    ss_infer_dep_t d = {.ntok = n, .tok = q->atok, .nchunk = nc};
    d.sent_end = malloc((size_t)(n + 1) * sizeof *d.sent_end);
    d.mass = calloc((size_t)(n + 1) * (size_t)nc, sizeof *d.mass);
    if (!d.sent_end || !d.mass) {
        set_fail(q, SS_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        float *sm = d.mass + (size_t)d.nsent * nc;
        for (int c = 0; c < nc; c++) { /* token i's mass: the KV heads' slices added */
            float v = 0;
            for (int h = 0; h < nkv; h++)
                v += q->mass[((size_t)i * nkv + h) * nc + c];
            sm[c] = SS_MAX(sm[c], v);
        }
        if (i == n - 1 || ends_sentence(m, q->atok[i], i ? q->atok[i - 1] : q->ptok[q->np - 1]))
            d.sent_end[d.nsent++] = i + 1;
    }
    if (ss_infer_dep_encode(&d, &q->res->dep, &q->res->dep_len))
        set_fail(q, SS_ERR_NOMEM, "out of memory");
out:
    free(d.sent_end);
    free(d.mass);
}

int rq_setup(ss_llm_t *m, rq_t *q)
{
    const ss_infer_req_t *r = q->r;
    q->res->status = SS_OK;
    q->next = -1;
    char *wrapped = ss_llm_req_prompt(m, r); /* the chat form, or NULL: the prompt as given */
    int erc = encode(m, wrapped ? wrapped : r->prompt, 1, 0, &q->ptok, &q->np);
    int was_wrapped = wrapped != NULL;
    free(wrapped);
    if (erc)
        return -1;
    q->res->prompt_tokens = q->np;
    if (q->np == 0)
        return set_fail(q, SS_ERR_INVALID, "empty prompt (and the model adds no BOS)");
    int room = m->cfg.ctx_len - (r->kind == SS_INFER_GENERATE ? 1 : 8);
    if (q->np > room) {
        char msg[160];
        snprintf(msg, sizeof msg, "prompt of %d tokens does not fit the context of %d tokens", q->np, m->cfg.ctx_len);
        return set_fail(q, SS_ERR_INVALID, msg);
    }
    /* a prefill computes only full blocks (a partial last block is never reused) */
    int npush = r->kind == SS_INFER_GENERATE && r->prefill_only ? prefill_len(q->np) : q->np;
    for (int i = 0; i < npush; i++)
        if (seq_push(&q->seq, q->ptok[i]))
            return -1;
    q->seq.user = q;
    q->seq.reuse = 1;
    q->seq.out_from = q->np - 1;
    switch (r->kind) {
    case SS_INFER_CHOOSE:
    case SS_INFER_SCORE:
        q->seq.on_out = on_prompt_out;
        q->seq.out_toks = prompt_toks;
        return setup_choices(m, q);
    case SS_INFER_GENERATE:
        if (r->prefill_only) { /* streaming prefill: KV into the prefix cache, no logits */
            if (r->nforced || r->ntrack > 0 || r->json_schema)
                return set_fail(q, SS_ERR_INVALID, "a prefill-only request takes no forced tokens, tracking or schema");
            q->seq.out_from = INT_MAX;
            return 0;
        }
        q->seq.on_out = on_gen_out;
        q->seq.argmax_only = r->temperature <= 0 && r->top_logprobs <= 0 && !r->json_schema;
        if (r->json_schema) { /* constrained decoding (grammar.c) */
            char gerr[SS_ERRSZ];
            int grc = gram_seq_new(m, r->json_schema, r->max_tokens > 0 ? r->max_tokens : 64, &q->gram, gerr,
                                   sizeof gerr);
            if (grc)
                return grc == SS_ERR_NOMEM ? -1 : set_fail(q, grc, gerr);
        }
        q->rng = r->seed ? r->seed : 0x5eed;
        if ((r->nforced || r->ntrack > 0) && setup_dep(m, q, was_wrapped))
            return -1;
        return r->nchunks > 0 && !q->done ? setup_blend(m, q, was_wrapped) : 0;
    case SS_INFER_EMBED:
        q->seq.out_from = INT_MAX;
        q->seq.reuse = 0;
        q->seq.hid_sum = calloc((size_t)m->cfg.dim, sizeof(float));
        return q->seq.hid_sum ? 0 : -1;
    }
    return set_fail(q, SS_ERR_INVALID, "unknown request kind");
}

static void finish_choices(rq_t *q)
{
    ss_infer_res_t *res = q->res;
    res->probs = malloc((size_t)q->nch * sizeof(float));
    if (!res->probs) {
        set_fail(q, SS_ERR_NOMEM, "out of memory");
        return;
    }
    double mx = -INFINITY, sum = 0;
    for (int c = 0; c < q->nch; c++)
        if (q->ch[c].n > 0 && q->ch[c].lp > mx)
            mx = q->ch[c].lp;
    for (int c = 0; c < q->nch; c++)
        sum += q->ch[c].n > 0 ? exp(q->ch[c].lp - mx) : 0;
    res->nprobs = q->nch;
    res->score = 0;
    for (int c = 0; c < q->nch; c++) {
        res->probs[c] = q->ch[c].n > 0 && sum > 0 ? (float)(exp(q->ch[c].lp - mx) / sum) : 0.f;
        res->score += (double)(q->r->score_min + c) * res->probs[c];
    }
    if (q->r->kind != SS_INFER_SCORE)
        res->score = 0;
}

static void finish_embed(ss_llm_t *m, rq_t *q)
{
    int d = m->cfg.dim;
    float *e = q->seq.hid_sum;
    double n2 = 0;
    for (int i = 0; i < d; i++) {
        e[i] /= (float)q->np;
        n2 += (double)e[i] * e[i];
    }
    float inv = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.f;
    for (int i = 0; i < d; i++)
        e[i] *= inv;
    q->res->emb = e;
    q->res->dim = d;
    q->seq.hid_sum = NULL;
}

void rq_free(ss_llm_t *m, rq_t *q)
{
    for (int c = 0; c < q->nch && q->ch; c++) {
        free(q->ch[c].tok);
        seq_release(m, &q->ch[c].seq);
    }
    free(q->ch);
    free(q->ptok);
    free(q->tlp);
    free(q->span);
    free(q->bspan);
    free(q->mass);
    free(q->atok);
    free(q->seq.hid_sum);
    gram_seq_free(q->gram);
    seq_release(m, &q->seq);
    ss_buf_free(&q->text);
}

/* ---------------- generation loop ---------------- */

int rq_gen_advance(ss_llm_t *m, rq_t *q)
{
    const ss_infer_req_t *r = q->r;
    int t = q->next, maxt = r->max_tokens > 0 ? r->max_tokens : 64;
    q->next = -1;
    if (t < 0 || t == m->cfg.eos || t == m->eot)
        return 1;
    q->ngen++;
    if (q->atok && q->natok < maxt + 1)
        q->atok[q->natok++] = t;
    if (r->top_logprobs > 0) {
        if (q->ntlp == q->tlpcap) {
            int nc = q->tlpcap ? 2 * q->tlpcap : 32;
            float *p = realloc(q->tlp, (size_t)nc * sizeof *p);
            if (!p)
                return 1;
            q->tlp = p;
            q->tlpcap = nc;
        }
        q->tlp[q->ntlp++] = q->last_lp;
    }
    tok_decode_piece(&m->tok, t, q->seq.tok[q->seq.ntok - 1], &q->text);
    if (q->gram && gram_seq_advance(m, q->gram, t))
        return 1; /* the JSON value is complete */
    if (q->text.len && (r->stop || r->nstop)) { /* the earliest of the stop strings ends the text */
        char *cut = NULL;
        for (int i = -1; i < r->nstop; i++) {
            const char *x = i < 0 ? r->stop : r->stops ? r->stops[i] : NULL;
            char *hit = x && *x ? strstr(q->text.data, x) : NULL;
            if (hit && (!cut || hit < cut))
                cut = hit;
        }
        if (cut) {
            q->text.len = (size_t)(cut - q->text.data);
            q->text.data[q->text.len] = 0;
            return 1;
        }
    }
    if (q->ngen >= maxt || q->seq.ntok + 1 >= m->cfg.ctx_len || seq_push(&q->seq, t))
        return 1;
    q->seq.out_from = q->seq.ntok - 1;
    return 0;
}

void rq_finish(ss_llm_t *m, rq_t *q)
{
    if (q->res->status != SS_OK)
        return;
    switch (q->r->kind) {
    case SS_INFER_CHOOSE:
    case SS_INFER_SCORE:
        finish_choices(q);
        break;
    case SS_INFER_GENERATE:
        if (q->r->ntrack > 0)
            finish_dep(m, q);
        q->res->text = ss_buf_take(&q->text);
        q->res->gen_tokens = q->ngen - q->r->nforced; /* decoded; the forced ones were prefilled */
        q->res->prompt_tokens = q->np + q->r->nforced;
        q->res->token_logprobs = q->tlp;
        q->tlp = NULL;
        break;
    case SS_INFER_EMBED:
        finish_embed(m, q);
        break;
    }
}

/* ---------------- ss_llm_run: submit all, step until done ---------------- */

static void run_done(void *ctx, ss_infer_res_t *res, int rc)
{
    (void)res, (void)rc;
    (*(int *)ctx)--;
}

int ss_llm_run(ss_llm_t *m, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err, size_t errsz)
{
    int left = 0;
    ss_err_t rc = SS_OK, src = SS_OK;
    for (int i = 0; i < n && !rc; i++)
        if (!(rc = ss_llm_submit(m, &reqs[i], &res[i], run_done, &left, err, errsz)))
            left++;
    /* no token budget: every prompt is prefilled in the first step, as one batch */
    char serr[SS_ERRSZ] = "";
    while (left > 0) {
        ss_err_t s = ss_llm_step(m, -1, serr, sizeof serr);
        if (s && !src) {
            src = s;
            if (!rc)
                snprintf(err, errsz, "%s", serr);
        }
    }
    return rc ? rc : src;
}

/* ---------------- low-level helpers ---------------- */

static void on_greedy(ss_llm_t *m, seq_t *s, int pos, const float *logits)
{
    if (pos == s->ntok - 1)
        s->user_i = argmax(logits, m->cfg.vocab_size);
}

int ss_llm_greedy(ss_llm_t *m, const int *prompt, int n, int max_new, int *out, char *err, size_t errsz)
{
    seq_t s;
    memset(&s, 0, sizeof s);
    s.reuse = 1;
    s.on_out = on_greedy;
    for (int i = 0; i < n; i++)
        if (seq_push(&s, prompt[i])) {
            seq_release(m, &s);
            ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            return -1;
        }
    int k = 0;
    seq_t *one = &s;
    while (k < max_new && s.ntok < m->cfg.ctx_len) {
        s.out_from = s.ntok - 1;
        if (eng_compute(m, &one, 1, err, errsz)) {
            seq_release(m, &s);
            return -1;
        }
        out[k++] = s.user_i;
        if (s.user_i == m->cfg.eos || seq_push(&s, s.user_i))
            break;
    }
    seq_release(m, &s);
    return k;
}

static void on_copy(ss_llm_t *m, seq_t *s, int pos, const float *logits)
{
    if (pos == s->ntok - 1)
        memcpy((float *)s->user, logits, (size_t)m->cfg.vocab_size * sizeof(float));
}

ss_err_t ss_llm_last_logits(ss_llm_t *m, int nseq, const int *const *toks, const int *ntoks, float *logits,
                            char *err, size_t errsz)
{
    seq_t *s = calloc((size_t)(nseq ? nseq : 1), sizeof *s);
    seq_t **p = calloc((size_t)(nseq ? nseq : 1), sizeof *p);
    ss_err_t rc = s && p ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nseq && !rc; i++) {
        p[i] = &s[i];
        s[i].reuse = 1;
        s[i].on_out = on_copy;
        s[i].user = logits + (size_t)i * m->cfg.vocab_size;
        for (int k = 0; k < ntoks[i] && !rc; k++)
            if (seq_push(&s[i], toks[i][k]))
                rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        s[i].out_from = ntoks[i] - 1;
        if (ntoks[i] <= 0)
            rc = ss_seterr(err, errsz, SS_ERR_INVALID, "sequence %d is empty", i);
    }
    if (!rc)
        rc = eng_compute(m, p, nseq, err, errsz);
    for (int i = 0; s && i < nseq; i++)
        seq_release(m, &s[i]);
    free(s);
    free(p);
    return rc;
}
