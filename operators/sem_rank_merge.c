/*
 * sem_rank_merge.c — SEM_RANK's comparisons and batched placement (sem_topk_int.h): "A or B?"
 * asked as CHOOSE(" A"," B") with A the pair member of smaller projection, memoised per ordered
 * pair in st_<id>_cmp (the reverse question is the negation), and the placement of many rows in
 * rounds of independent comparisons, each round one dispatcher call (see sem_topk.c's header
 * for the zones these serve). Also the row lists both files use.
 */
#include "sem_topk_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RANK_TASK "Which of the two inputs, A or B, fits the instruction better? Answer A or B."

/* ------------------------------------------------------------------ lists */

void ss__tk_item_free(titem_t *it)
{
    ss_buf_free(&it->r);
    ss_buf_free(&it->k);
}

void ss__tk_list_free(tlist_t *l)
{
    for (int i = 0; i < l->n; i++)
        ss__tk_item_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Inserts *it at position p (taking its buffers). */
int ss__tk_list_insert(tlist_t *l, int p, titem_t *it)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        titem_t *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return SS_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    memmove(&l->v[p + 1], &l->v[p], (size_t)(l->n - p) * sizeof *l->v);
    l->v[p] = *it;
    memset(it, 0, sizeof *it);
    l->n++;
    return SS_OK;
}

void ss__tk_list_take(tlist_t *l, int p, titem_t *out)
{
    *out = l->v[p];
    memmove(&l->v[p], &l->v[p + 1], (size_t)(l->n - p - 1) * sizeof *l->v);
    l->n--;
}

int ss__tk_buf_cmp(const ss_buf_t *a, const ss_buf_t *b)
{
    size_t n = SS_MIN(a->len, b->len);
    int c = n ? memcmp(a->data, b->data, n) : 0;
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

int ss__tk_list_find(const tlist_t *l, const ss_buf_t *r)
{
    for (int i = 0; i < l->n; i++)
        if (ss__tk_buf_cmp(&l->v[i].r, r) == 0)
            return i;
    return -1;
}

static int cmp_key(const titem_t *a, const titem_t *b, ss_buf_t *key)
{
    uint32_t n = (uint32_t)a->k.len;
    int rc = ss_buf_append(key, &n, sizeof n);
    if (!rc)
        rc = ss_buf_append(key, a->k.data, a->k.len);
    if (!rc)
        rc = ss_buf_append(key, b->k.data, b->k.len);
    return rc;
}

static int rank_fields(ss_buf_t *out, const ss_template_t *t, const ss_buf_t *row, const char *label)
{
    ss_row_t *r = NULL;
    int rc = ss_row_decode(row->data, row->len, &r);
    if (!rc)
        rc = ss_sem_fields(out, t, 0, r, label);
    if (!rc)
        rc = ss_sem_fields(out, t, 1, r, label);
    ss_row_free(r);
    return rc;
}

/* Makes sure the memo answers every pair (a[i] first, b[i] second, a[i].k < b[i].k):
 * the missing ones (deduplicated) are asked in one dispatcher call. */
static int ensure_cmps(rank_run_t *R, titem_t **a, titem_t **b, int n)
{
    size_t cnt = (size_t)(n ? n : 1);
    ss_buf_t *prompts = calloc(cnt, sizeof *prompts);
    ss_buf_t *keys = calloc(cnt, sizeof *keys);
    const ss_buf_t **kp = calloc(cnt, sizeof *kp);
    ss_infer_req_t *reqs = calloc(cnt, sizeof *reqs);
    ss_infer_res_t *res = calloc(cnt, sizeof *res);
    ss_sem_set_t seen = {0};
    int m = 0, rc = prompts && keys && kp && reqs && res ? SS_OK : SS_ERR_NOMEM;
    if (!rc)
        rc = ss_sem_set_init(&seen, cnt);
    ss_buf_t v = SS_BUF_INIT;
    for (int i = 0; i < n && !rc; i++) {
        ss_buf_t *key = &keys[m];
        ss_buf_reset(key);
        kp[m] = key;
        rc = cmp_key(a[i], b[i], key);
        int found = 0;
        if (!rc)
            rc = ss_sem_kv_get(&R->cmp, key->data, key->len, &v, &found, R->err, R->errsz);
        if (rc || found || ss_sem_set_add(&seen, kp, key, m) >= 0)
            continue;
        size_t pre = 0;
        ss_buf_t *p = &prompts[m];
        rc = ss_sem_head(p, RANK_TASK, R->op->node->tmpl);
        pre = p->len;
        if (!rc) rc = ss_buf_puts(p, "### Input\n");
        if (!rc) rc = rank_fields(p, R->op->node->tmpl, &a[i]->r, "A.");
        if (!rc) rc = rank_fields(p, R->op->node->tmpl, &b[i]->r, "B.");
        if (!rc) rc = ss_buf_puts(p, "### Answer (A or B):");
        ss_sem_req_choose(&reqs[m], ss_buf_cstr(p), pre, ss_sem_ab);
        m++;
    }
    for (int i = 0; i < m && !rc; i++)
        reqs[i].prompt = ss_buf_cstr(&prompts[i]);
    if (!rc)
        rc = ss_sem_run(R->op, R->ctx, reqs, m, res, R->err, R->errsz);
    for (int i = 0; i < m && !rc; i++) {
        rc = ss_sem_kv_put(&R->cmp, keys[i].data, keys[i].len, ss_sem_first(&res[i]) ? "1" : "0", 1,
                           R->err, R->errsz);
        if (!rc && R->prune)
            rc = ss_sem_pairs_note(&R->pairs, keys[i].data, keys[i].len, R->err, R->errsz);
    }
    for (int i = 0; i < n; i++) {
        if (prompts) ss_buf_free(&prompts[i]);
        if (keys) ss_buf_free(&keys[i]);
    }
    ss_sem_set_free(&seen);
    ss_buf_free(&v);
    free(prompts);
    free(keys);
    free(kp);
    free(reqs);
    ss_sem_res_free(res, res ? m : 0);
    return rc;
}

/* Orders the pair for the memo: returns 1 if swapped (x is the larger key). */
static int canon(titem_t *x, titem_t *y, titem_t **a, titem_t **b)
{
    int sw = ss__tk_buf_cmp(&x->k, &y->k) > 0;
    *a = sw ? y : x;
    *b = sw ? x : y;
    return sw;
}

/* *better = 1 if x ranks before y; asks the model (alone) only if the memo lacks the pair. */
static int ranks_before(rank_run_t *R, titem_t *x, titem_t *y, int *better)
{
    sem_topk_t *t = R->op->impl;
    if (ss__tk_buf_cmp(&x->k, &y->k) == 0) {
        *better = ss__tk_buf_cmp(&x->r, &y->r) < 0;
        return SS_OK;
    }
    titem_t *a, *b;
    int sw = canon(x, y, &a, &b);
    ss_buf_t key = SS_BUF_INIT, v = SS_BUF_INIT;
    int found = 0;
    int rc = cmp_key(a, b, &key);
    if (!rc)
        rc = ss_sem_kv_get(&R->cmp, key.data, key.len, &v, &found, R->err, R->errsz);
    if (!rc && !found)
        rc = ensure_cmps(R, &a, &b, 1);
    if (!rc && !found)
        rc = ss_sem_kv_get(&R->cmp, key.data, key.len, &v, &found, R->err, R->errsz);
    if (!rc && !found)
        rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "sem_topk: comparison vanished");
    if (!rc) {
        int a_wins = v.len && v.data[0] == '1';
        int x_wins = sw ? !a_wins : a_wins;
        *better = t->desc ? x_wins : !x_wins;
    }
    ss_buf_free(&key);
    ss_buf_free(&v);
    return rc;
}

/* ------------------------------------------------------------------ batched merging
 *
 * Placing many rows is done in rounds: every comparison that does not depend on
 * another one's answer is queued, and a round sends the whole queue to the model in
 * one dispatcher call (which batches it). Every placement decision is one of the
 * comparisons asked, so the resulting order agrees with each of them.
 *
 *  - ss__tk_merge_batch(L sorted, X new, cap): each new row is compared with the row at
 *    L's last useful place (one round for all); the winners find their gap in L by
 *    binary searches run side by side (one round per step); the rows that fell in one
 *    gap are ordered among themselves by top_sorted.
 *  - top_sorted(X, c): the best c of X, sorted; a partial quicksort whose partitions
 *    of all open segments go in one round. A large X (> 8c + 64) first picks a pivot
 *    from a sample (its first n/8 rows, the ceil(c/4)-th best of them, recursively),
 *    compares every other row with it in one round and continues with the ~2c winners
 *    only: about n + n/8 + ... comparisons and O(log n) rounds for the n rows of an
 *    initial load, instead of one call per comparison. */


int ss__tk_pv_push(pvec_t *p, titem_t *it)
{
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        titem_t **v = realloc(p->v, (size_t)cap * sizeof *v);
        if (!v)
            return SS_ERR_NOMEM;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = it;
    return SS_OK;
}

int ss__tk_pv_extend(pvec_t *p, titem_t *const *v, int n)
{
    int rc = SS_OK;
    for (int i = 0; i < n && !rc; i++)
        rc = ss__tk_pv_push(p, v[i]);
    return rc;
}

void ss__tk_pv_free(pvec_t *p)
{
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* A round's comparisons, in memo order (a[i].k < b[i].k). */
typedef struct cmpq {
    titem_t **a, **b;
    int n, cap;
} cmpq_t;

static int cq_add(cmpq_t *q, titem_t *x, titem_t *y)
{
    if (ss__tk_buf_cmp(&x->k, &y->k) == 0) /* same projection: decided by the row encoding */
        return SS_OK;
    if (q->n == q->cap) {
        int cap = q->cap ? q->cap * 2 : 64;
        titem_t **a = realloc(q->a, (size_t)cap * sizeof *a);
        if (!a)
            return SS_ERR_NOMEM;
        q->a = a;
        titem_t **b = realloc(q->b, (size_t)cap * sizeof *b);
        if (!b)
            return SS_ERR_NOMEM;
        q->b = b;
        q->cap = cap;
    }
    canon(x, y, &q->a[q->n], &q->b[q->n]);
    q->n++;
    return SS_OK;
}

/* Sends the round (one dispatcher call for the pairs the memo lacks) and empties it. */
static int cq_run(rank_run_t *R, cmpq_t *q)
{
    int rc = q->n ? ensure_cmps(R, q->a, q->b, q->n) : SS_OK;
    q->n = 0;
    return rc;
}

static void cq_free(cmpq_t *q)
{
    free(q->a);
    free(q->b);
    memset(q, 0, sizeof *q);
}

/* Compares every v[i] with pivot in one round; better[i] = 1 if v[i] ranks before it. */
static int partition_round(rank_run_t *R, titem_t **v, int n, titem_t *pivot, char *better)
{
    cmpq_t q = {0};
    int rc = SS_OK, b = 0;
    for (int i = 0; i < n && !rc; i++)
        rc = cq_add(&q, v[i], pivot);
    if (!rc)
        rc = cq_run(R, &q);
    for (int i = 0; i < n && !rc; i++) {
        rc = ranks_before(R, v[i], pivot, &b);
        better[i] = (char)b;
    }
    cq_free(&q);
    return rc;
}

/* Partial quicksort in rounds: w[0..n) is reordered so that w[0..min(c,n)) are the best
 * c, sorted; seg[i] = length of the unsorted segment starting at i (1 = placed). */
static int psort(rank_run_t *R, titem_t **w, int n, int c)
{
    int *seg = calloc((size_t)n + 1, sizeof *seg);
    titem_t **tmp = malloc(((size_t)n + 1) * sizeof *tmp);
    char *better = malloc((size_t)n + 1);
    cmpq_t q = {0};
    int rc = seg && tmp && better ? SS_OK : SS_ERR_NOMEM, open = 1;
    if (!rc && n)
        seg[0] = n;
    while (!rc && open) {
        open = 0;
        for (int s = 0; s < n && s < c && !rc; s += seg[s])
            for (int i = s + 1; i < s + seg[s] && !rc; i++) {
                rc = cq_add(&q, w[i], w[s]);
                open = 1;
            }
        if (!rc && open)
            rc = cq_run(R, &q);
        for (int s = 0; s < n && s < c && !rc && open;) {
            int len = seg[s], nb = 0, nw = 0, b = 0;
            if (len == 1) {
                s++;
                continue;
            }
            for (int i = s + 1; i < s + len && !rc; i++) {
                rc = ranks_before(R, w[i], w[s], &b);
                better[i] = (char)b;
                nb += b;
            }
            int bi = 0;
            tmp[s + nb] = w[s];
            for (int i = s + 1; i < s + len && !rc; i++) {
                if (better[i])
                    tmp[s + bi++] = w[i];
                else
                    tmp[s + nb + 1 + nw++] = w[i];
            }
            memcpy(&w[s], &tmp[s], (size_t)len * sizeof *w);
            if (nb)
                seg[s] = nb;
            seg[s + nb] = 1;
            if (len - nb - 1 > 0)
                seg[s + nb + 1] = len - nb - 1;
            s += len;
        }
    }
    cq_free(&q);
    free(seg);
    free(tmp);
    free(better);
    return rc;
}

int ss__tk_merge_batch(rank_run_t *R, titem_t **L, int nl, titem_t **X, int nx, int cap, pvec_t *out,
                       pvec_t *rest);

/* Appends the best min(c, n) of v[0..n) to sorted (in order) and the others to rest. */
static int top_sorted(rank_run_t *R, titem_t **v, int n, int c, pvec_t *sorted, pvec_t *rest)
{
    if (c <= 0 || n == 0)
        return ss__tk_pv_extend(rest, v, n);
    if (n <= 8 * c + 64) {
        titem_t **w = malloc((size_t)n * sizeof *w);
        if (!w)
            return SS_ERR_NOMEM;
        memcpy(w, v, (size_t)n * sizeof *w);
        int rc = psort(R, w, n, c), m = SS_MIN(n, c);
        if (!rc)
            rc = ss__tk_pv_extend(sorted, w, m);
        if (!rc)
            rc = ss__tk_pv_extend(rest, w + m, n - m);
        free(w);
        return rc;
    }
    int s = n / 8, c2 = (c + 3) / 4;
    pvec_t ss = {0}, srest = {0}, win = {0}, lose = {0}, merged = {0}, mrest = {0};
    char *better = malloc((size_t)n);
    int rc = better ? top_sorted(R, v, s, c2, &ss, &srest) : SS_ERR_NOMEM;
    if (!rc)
        rc = partition_round(R, v + s, n - s, ss.v[ss.n - 1], better);
    for (int i = s; i < n && !rc; i++)
        rc = ss__tk_pv_push(better[i - s] ? &win : &lose, v[i]);
    if (!rc)
        rc = ss__tk_merge_batch(R, ss.v, ss.n, win.v, win.n, c, &merged, &mrest);
    if (!rc && merged.n >= c) {
        rc = ss__tk_pv_extend(sorted, merged.v, c);
        if (!rc) rc = ss__tk_pv_extend(rest, merged.v + c, merged.n - c);
        if (!rc) rc = ss__tk_pv_extend(rest, mrest.v, mrest.n);
        if (!rc) rc = ss__tk_pv_extend(rest, lose.v, lose.n);
        if (!rc) rc = ss__tk_pv_extend(rest, srest.v, srest.n);
    } else if (!rc) { /* fewer than c beat the pivot: the rest comes from below it */
        rc = ss__tk_pv_extend(sorted, merged.v, merged.n);
        if (!rc) rc = ss__tk_pv_extend(&lose, srest.v, srest.n);
        if (!rc) rc = ss__tk_pv_extend(&lose, mrest.v, mrest.n);
        if (!rc) rc = top_sorted(R, lose.v, lose.n, c - merged.n, sorted, rest);
    }
    free(better);
    ss__tk_pv_free(&ss);
    ss__tk_pv_free(&srest);
    ss__tk_pv_free(&win);
    ss__tk_pv_free(&lose);
    ss__tk_pv_free(&merged);
    ss__tk_pv_free(&mrest);
    return rc;
}

/* Merges new rows X into the sorted L keeping the first cap places: out gets the merged
 * sorted sequence (L's rows pushed past cap included, at its end), rest the new rows left
 * unsorted, each known to rank below out[cap - 1]. */
int ss__tk_merge_batch(rank_run_t *R, titem_t **L, int nl, titem_t **X, int nx, int cap, pvec_t *out,
                       pvec_t *rest)
{
    if (nl == 0)
        return top_sorted(R, X, nx, cap, out, rest);
    int top = SS_MIN(nl, cap), full = nl >= cap, base = out->n;
    int *lo = calloc((size_t)nx + 1, sizeof *lo), *hi = calloc((size_t)nx + 1, sizeof *hi);
    char *better = malloc((size_t)nx + 1);
    pvec_t gap = {0};
    cmpq_t q = {0};
    int rc = lo && hi && better ? SS_OK : SS_ERR_NOMEM;
    if (!rc)
        rc = partition_round(R, X, nx, L[top - 1], better);
    for (int i = 0; i < nx && !rc; i++) { /* winners search [0, top-1); losers: gap nl or rest */
        lo[i] = better[i] ? 0 : nl;
        hi[i] = better[i] ? top - 1 : nl;
        if (!better[i] && full) {
            lo[i] = hi[i] = -1;
            rc = ss__tk_pv_push(rest, X[i]);
        }
    }
    for (int open = 1; !rc && open;) {
        open = 0;
        for (int i = 0; i < nx && !rc; i++)
            if (lo[i] < hi[i]) {
                rc = cq_add(&q, X[i], L[lo[i] + (hi[i] - lo[i]) / 2]);
                open = 1;
            }
        if (!rc && open)
            rc = cq_run(R, &q);
        for (int i = 0; i < nx && !rc && open; i++)
            if (lo[i] < hi[i]) {
                int mid = lo[i] + (hi[i] - lo[i]) / 2, b = 0;
                rc = ranks_before(R, X[i], L[mid], &b);
                if (b)
                    hi[i] = mid;
                else
                    lo[i] = mid + 1;
            }
    }
    for (int g = 0; g <= nl && !rc; g++) {
        gap.n = 0;
        for (int i = 0; i < nx && !rc; i++)
            if (lo[i] == g)
                rc = ss__tk_pv_push(&gap, X[i]);
        if (!rc)
            rc = top_sorted(R, gap.v, gap.n, cap - (out->n - base), out, rest);
        if (!rc && g < nl)
            rc = ss__tk_pv_push(out, L[g]);
    }
    free(lo);
    free(hi);
    free(better);
    ss__tk_pv_free(&gap);
    cq_free(&q);
    return rc;
}
