/*
 * sem_topk.c — ORDER BY SEM_SCORE('t') LIMIT k and ORDER BY SEM_RANK('t') LIMIT k.
 * The view is the k best distinct rows (each emitted with its weight); its changes
 * are emitted as differences against the previously emitted top (st_<id>_out).
 *
 * SEM_SCORE (pointwise): one SCORE request per distinct projection of the template's
 * columns, memoised in st_<id>_memo with reference counts (deletes and unchanged
 * updates cost nothing); rows are ordered by score, then by their encoding, so the
 * view equals a from-scratch run exactly.
 *
 * SEM_RANK (pairwise): "A or B?" asked as CHOOSE(" A"," B") with A the pair member of
 * smaller key, memoised per ordered pair in st_<id>_cmp (the reverse question is the
 * negation). Rows live in four zones of st_<id>_rows:
 *   T  the top k, sorted (pos);          B  a sorted buffer of up to `buffer` rows below T;
 *   P  unsorted rows known to rank below T's last;   R  unsorted rows known below all of B.
 * An insert is compared with T's last (1 comparison): if it loses it goes to P, else it is
 * placed in T by binary search (ceil(log2 k) more) and T's last moves to the head of B.
 * The new rows of a batch are placed together, in rounds of independent comparisons, each
 * round one dispatcher call (merge_batch / top_sorted below); an initial load selects the
 * top k + buffer by sampling and partial quicksort (about 1.1 comparisons per row).
 * Deleting a row of T promotes the head of B after merging P into B (in rounds too);
 * an empty B is refilled lazily from R. With a consistent (total-order) comparator the
 * result equals a from-scratch run whatever order rows came in.
 *
 * Partitions (option partition_by = 'window_end', src/plan_sem.c): the top k of each
 * partition, the rows of one partition (column p of st_<id>_rows and st_<id>_out: the
 * encoded partition columns, x'' without partitions) ranked among themselves. When the
 * partition holds a window bound (window_col, src/plan_timewin.c) a window's rows, its
 * emitted top and their memo references are dropped once the watermark passes its end
 * (winstate.c); its rows stay in the view, final.
 */
#include "ss_sem.h"
#include "ss_state.h"
#include "ss_winstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_TASK "Rate how well the input fits the instruction from 1 to 10."
#define RANK_TASK "Which of the two inputs, A or B, fits the instruction better? Answer A or B."

enum { Z_TOP = 0, Z_BUF = 1, Z_POOL = 2, Z_REST = 3, Z_NEG = 4 };

typedef struct sem_topk {
    int rank;      /* 1 = SEM_RANK, 0 = SEM_SCORE */
    int k, buffer;
    int desc;
    int cols[SS_SEM_MAXCOLS];
    int ncols;
    ss_winstate_t ws; /* partitions by window: a closed window's state is dropped (winstate.c) */
} sem_topk_t;

typedef struct titem {
    ss_buf_t r, k;  /* encoded row, encoded projection */
    int64_t w;
} titem_t;

typedef struct tlist {
    titem_t *v;
    int n, cap;
} tlist_t;

/* ------------------------------------------------------------------ lists */

static void item_free(titem_t *it)
{
    ss_buf_free(&it->r);
    ss_buf_free(&it->k);
}

static void list_free(tlist_t *l)
{
    for (int i = 0; i < l->n; i++)
        item_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Inserts *it at position p (taking its buffers). */
static int list_insert(tlist_t *l, int p, titem_t *it)
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

static void list_take(tlist_t *l, int p, titem_t *out)
{
    *out = l->v[p];
    memmove(&l->v[p], &l->v[p + 1], (size_t)(l->n - p - 1) * sizeof *l->v);
    l->n--;
}

static int buf_cmp(const ss_buf_t *a, const ss_buf_t *b)
{
    size_t n = SS_MIN(a->len, b->len);
    int c = n ? memcmp(a->data, b->data, n) : 0;
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int list_find(const tlist_t *l, const ss_buf_t *r)
{
    for (int i = 0; i < l->n; i++)
        if (buf_cmp(&l->v[i].r, r) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------------ comparisons */

typedef struct rank_run {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
    ss_sem_kv_t cmp;
    char *err;
    size_t errsz;
    ss_sem_pairs_t pairs; /* members of st_<id>_cmp's keys (memo='prune') */
    int prune;
    tlist_t gone;         /* projections of the rows removed in this batch */
    const ss_buf_t *part; /* the partition being placed (encoded partition columns) */
} rank_run_t;

/* Binds partition key p (empty: no partitions) to parameter i. */
static void bind_part(sqlite3_stmt *st, int i, const ss_buf_t *p)
{
    sqlite3_bind_blob(st, i, p && p->data ? p->data : "", p ? (int)p->len : 0, SQLITE_STATIC);
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
    int sw = buf_cmp(&x->k, &y->k) > 0;
    *a = sw ? y : x;
    *b = sw ? x : y;
    return sw;
}

/* *better = 1 if x ranks before y; asks the model (alone) only if the memo lacks the pair. */
static int ranks_before(rank_run_t *R, titem_t *x, titem_t *y, int *better)
{
    sem_topk_t *t = R->op->impl;
    if (buf_cmp(&x->k, &y->k) == 0) {
        *better = buf_cmp(&x->r, &y->r) < 0;
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
 *  - merge_batch(L sorted, X new, cap): each new row is compared with the row at
 *    L's last useful place (one round for all); the winners find their gap in L by
 *    binary searches run side by side (one round per step); the rows that fell in one
 *    gap are ordered among themselves by top_sorted.
 *  - top_sorted(X, c): the best c of X, sorted; a partial quicksort whose partitions
 *    of all open segments go in one round. A large X (> 8c + 64) first picks a pivot
 *    from a sample (its first n/8 rows, the ceil(c/4)-th best of them, recursively),
 *    compares every other row with it in one round and continues with the ~2c winners
 *    only: about n + n/8 + ... comparisons and O(log n) rounds for the n rows of an
 *    initial load, instead of one call per comparison. */

typedef struct pvec {
    titem_t **v;
    int n, cap;
} pvec_t;

static int pv_push(pvec_t *p, titem_t *it)
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

static int pv_extend(pvec_t *p, titem_t *const *v, int n)
{
    int rc = SS_OK;
    for (int i = 0; i < n && !rc; i++)
        rc = pv_push(p, v[i]);
    return rc;
}

static void pv_free(pvec_t *p)
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
    if (buf_cmp(&x->k, &y->k) == 0) /* same projection: decided by the row encoding */
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

static int merge_batch(rank_run_t *R, titem_t **L, int nl, titem_t **X, int nx, int cap, pvec_t *out,
                       pvec_t *rest);

/* Appends the best min(c, n) of v[0..n) to sorted (in order) and the others to rest. */
static int top_sorted(rank_run_t *R, titem_t **v, int n, int c, pvec_t *sorted, pvec_t *rest)
{
    if (c <= 0 || n == 0)
        return pv_extend(rest, v, n);
    if (n <= 8 * c + 64) {
        titem_t **w = malloc((size_t)n * sizeof *w);
        if (!w)
            return SS_ERR_NOMEM;
        memcpy(w, v, (size_t)n * sizeof *w);
        int rc = psort(R, w, n, c), m = SS_MIN(n, c);
        if (!rc)
            rc = pv_extend(sorted, w, m);
        if (!rc)
            rc = pv_extend(rest, w + m, n - m);
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
        rc = pv_push(better[i - s] ? &win : &lose, v[i]);
    if (!rc)
        rc = merge_batch(R, ss.v, ss.n, win.v, win.n, c, &merged, &mrest);
    if (!rc && merged.n >= c) {
        rc = pv_extend(sorted, merged.v, c);
        if (!rc) rc = pv_extend(rest, merged.v + c, merged.n - c);
        if (!rc) rc = pv_extend(rest, mrest.v, mrest.n);
        if (!rc) rc = pv_extend(rest, lose.v, lose.n);
        if (!rc) rc = pv_extend(rest, srest.v, srest.n);
    } else if (!rc) { /* fewer than c beat the pivot: the rest comes from below it */
        rc = pv_extend(sorted, merged.v, merged.n);
        if (!rc) rc = pv_extend(&lose, srest.v, srest.n);
        if (!rc) rc = pv_extend(&lose, mrest.v, mrest.n);
        if (!rc) rc = top_sorted(R, lose.v, lose.n, c - merged.n, sorted, rest);
    }
    free(better);
    pv_free(&ss);
    pv_free(&srest);
    pv_free(&win);
    pv_free(&lose);
    pv_free(&merged);
    pv_free(&mrest);
    return rc;
}

/* Merges new rows X into the sorted L keeping the first cap places: out gets the merged
 * sorted sequence (L's rows pushed past cap included, at its end), rest the new rows left
 * unsorted, each known to rank below out[cap - 1]. */
static int merge_batch(rank_run_t *R, titem_t **L, int nl, titem_t **X, int nx, int cap, pvec_t *out,
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
            rc = pv_push(rest, X[i]);
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
                rc = pv_push(&gap, X[i]);
        if (!rc)
            rc = top_sorted(R, gap.v, gap.n, cap - (out->n - base), out, rest);
        if (!rc && g < nl)
            rc = pv_push(out, L[g]);
    }
    free(lo);
    free(hi);
    free(better);
    pv_free(&gap);
    cq_free(&q);
    return rc;
}

/* ------------------------------------------------------------------ rank state */

typedef struct rank_state {
    tlist_t T, B;
    sqlite3_stmt *zone;   /* UPDATE rows SET zone=?2 WHERE r=?1 */
    sqlite3_stmt *ins;    /* INSERT OR REPLACE rows(r,k,w,zone,pos) */
    sqlite3_stmt *del;    /* DELETE FROM rows WHERE r=?1 */
    sqlite3_stmt *get;    /* SELECT k, w, zone FROM rows WHERE r=?1 */
} rank_state_t;

static int row_put(rank_run_t *R, rank_state_t *S, const titem_t *it, int zone, int pos)
{
    sqlite3_stmt *st = S->ins;
    sqlite3_reset(st);
    sqlite3_bind_blob(st, 1, it->r.data, (int)it->r.len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, it->k.data ? it->k.data : "", (int)it->k.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, it->w);
    sqlite3_bind_int(st, 4, zone);
    sqlite3_bind_int(st, 5, pos);
    bind_part(st, 6, R->part);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_topk rows");
    sqlite3_reset(st);
    return rc;
}

/* Moves B's overflow (beyond `buffer`) to R. */
static int trim_buffer(rank_run_t *R, rank_state_t *S)
{
    sem_topk_t *t = R->op->impl;
    int rc = SS_OK;
    while (S->B.n > t->buffer && !rc) {
        titem_t it;
        list_take(&S->B, S->B.n - 1, &it);
        rc = row_put(R, S, &it, Z_REST, 0);
        item_free(&it);
    }
    return rc;
}

/* Pointers to the items of l (valid while l is not changed). */
static titem_t **item_ptrs(tlist_t *l)
{
    titem_t **p = malloc(((size_t)l->n + 1) * sizeof *p);
    for (int i = 0; p && i < l->n; i++)
        p[i] = &l->v[i];
    return p;
}

static int zone_count(rank_run_t *R, int zone, int *n);

/* Loads the rows of a zone (P or R) and merges them into B in rounds (merge_batch):
 * B keeps the best `cap` of both, sorted; every other row goes to R. cap is `buffer`,
 * except when P is merged while R holds rows: a row of P below B's last is not known to
 * rank above R's rows, so B keeps its size (new rows enter only by beating B's rows). */
static int merge_zone(rank_run_t *R, rank_state_t *S, int zone)
{
    sem_topk_t *t = R->op->impl;
    int nr = 0, cap = t->buffer;
    if (zone == Z_POOL && zone_count(R, Z_REST, &nr) == SS_OK && nr > 0)
        cap = S->B.n;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz,
                            "SELECT r, k, w FROM st_%d_rows WHERE p=?1 AND zone=%d ORDER BY r", R->op->node->id,
                            zone);
    if (!rc)
        bind_part(st, 1, R->part);
    tlist_t L = {0}, nb = {0};
    int s;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        titem_t it;
        memset(&it, 0, sizeof it);
        rc = ss_buf_append(&it.r, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        if (!rc)
            rc = ss_buf_append(&it.k, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
        it.w = sqlite3_column_int64(st, 2);
        if (!rc)
            rc = list_insert(&L, L.n, &it);
        item_free(&it);
    }
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_topk zone");
    sqlite3_finalize(st);
    titem_t **bp = item_ptrs(&S->B), **lp = item_ptrs(&L);
    pvec_t out = {0}, rest = {0};
    if (!rc && (!bp || !lp))
        rc = SS_ERR_NOMEM;
    if (!rc)
        rc = cap ? merge_batch(R, bp, S->B.n, lp, L.n, cap, &out, &rest) : pv_extend(&rest, lp, L.n);
    for (int i = 0; i < rest.n && !rc; i++)
        rc = row_put(R, S, rest.v[i], Z_REST, 0);
    for (int i = 0; i < out.n && !rc; i++) {
        rc = row_put(R, S, out.v[i], i < cap ? Z_BUF : Z_REST, 0);
        if (!rc && i < cap)
            rc = list_insert(&nb, nb.n, out.v[i]);
    }
    if (!rc) {
        list_free(&S->B);
        S->B = nb;
        memset(&nb, 0, sizeof nb);
    }
    free(bp);
    free(lp);
    pv_free(&out);
    pv_free(&rest);
    list_free(&nb);
    list_free(&L);
    return rc;
}

static int zone_count(rank_run_t *R, int zone, int *n)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz,
                            "SELECT count(*) FROM st_%d_rows WHERE p=?1 AND zone=%d", R->op->node->id, zone);
    if (!rc)
        bind_part(st, 1, R->part);
    if (!rc && sqlite3_step(st) == SQLITE_ROW)
        *n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* Keeps T full while rows exist: merges P into B, refills an empty B from R, promotes. */
static int refill(rank_run_t *R, rank_state_t *S)
{
    sem_topk_t *t = R->op->impl;
    int np = 0, nr = 0, rc = SS_OK;
    while (S->T.n < t->k && !rc) {
        rc = zone_count(R, Z_POOL, &np);
        if (!rc && np)
            rc = merge_zone(R, S, Z_POOL);
        if (!rc && S->B.n == 0) {
            rc = zone_count(R, Z_REST, &nr);
            if (!rc && nr)
                rc = merge_zone(R, S, Z_REST);
        }
        if (rc || S->B.n == 0)
            break;
        titem_t it;
        list_take(&S->B, 0, &it);
        rc = list_insert(&S->T, S->T.n, &it);
    }
    return rc;
}

/* Places the new rows X (emptied) in rounds: merged into T (merge_batch); T's rows pushed
 * out go to the head of B, the new rows left unsorted to P (known below T's last). While T
 * is not full (then B, P and R are empty) the merge keeps k + buffer places, so B is filled
 * too and the rest goes to R. */
static int rank_insert_batch(rank_run_t *R, rank_state_t *S, tlist_t *X)
{
    sem_topk_t *t = R->op->impl;
    if (!X->n)
        return SS_OK;
    int fill = S->T.n < t->k && S->B.n == 0, cap = fill ? t->k + t->buffer : t->k;
    titem_t **tp = item_ptrs(&S->T), **xp = item_ptrs(X);
    pvec_t out = {0}, rest = {0};
    tlist_t nt = {0}, spill = {0};
    int rc = tp && xp ? SS_OK : SS_ERR_NOMEM;
    if (!rc)
        rc = merge_batch(R, tp, S->T.n, xp, X->n, cap, &out, &rest);
    for (int i = 0; i < rest.n && !rc; i++)
        rc = row_put(R, S, rest.v[i], fill ? Z_REST : Z_POOL, 0);
    for (int i = 0; i < out.n && !rc; i++)
        rc = list_insert(i < t->k ? &nt : &spill, i < t->k ? nt.n : spill.n, out.v[i]);
    if (!rc) {
        list_free(&S->T);
        S->T = nt;
        memset(&nt, 0, sizeof nt);
        for (int i = spill.n - 1; i >= 0 && !rc; i--)
            rc = list_insert(&S->B, 0, &spill.v[i]);
    }
    if (!rc)
        rc = trim_buffer(R, S);
    free(tp);
    free(xp);
    pv_free(&out);
    pv_free(&rest);
    list_free(&nt);
    list_free(&spill);
    list_free(X);
    return rc;
}

/* Removes row r (all of it); the caller refills T once all of the batch's rows are removed. */
static int rank_remove(rank_run_t *R, rank_state_t *S, const ss_buf_t *r)
{
    int i = list_find(&S->T, r);
    titem_t it;
    if (i >= 0) {
        list_take(&S->T, i, &it);
        item_free(&it);
    } else if ((i = list_find(&S->B, r)) >= 0) {
        list_take(&S->B, i, &it);
        item_free(&it);
    }
    sqlite3_reset(S->del);
    sqlite3_bind_blob(S->del, 1, r->data, (int)r->len, SQLITE_STATIC);
    int rc = sqlite3_step(S->del) == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_topk del");
    sqlite3_reset(S->del);
    return rc;
}

static int load_list(rank_run_t *R, int zone, tlist_t *l)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz,
                            "SELECT r, k, w FROM st_%d_rows WHERE p=?1 AND zone=%d ORDER BY pos", R->op->node->id,
                            zone);
    if (!rc)
        bind_part(st, 1, R->part);
    int s;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        titem_t it;
        memset(&it, 0, sizeof it);
        rc = ss_buf_append(&it.r, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        if (!rc)
            rc = ss_buf_append(&it.k, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
        it.w = sqlite3_column_int64(st, 2);
        if (!rc)
            rc = list_insert(l, l->n, &it);
        item_free(&it);
    }
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_topk load");
    sqlite3_finalize(st);
    return rc;
}

static void item_setw(rank_state_t *S, const ss_buf_t *r, int64_t w)
{
    int i = list_find(&S->T, r);
    if (i >= 0)
        S->T.v[i].w = w;
    if ((i = list_find(&S->B, r)) >= 0)
        S->B.v[i].w = w;
}

/* Remembers the projection of a removed row (its comparisons may be dropped at the end). */
static int note_gone(rank_run_t *R, const ss_buf_t *k)
{
    titem_t it;
    memset(&it, 0, sizeof it);
    int rc = ss_buf_append(&it.k, k->data ? k->data : "", k->len);
    if (!rc)
        rc = list_insert(&R->gone, R->gone.n, &it);
    item_free(&it);
    return rc;
}

/* memo='prune': drops the comparisons of every projection removed in this batch that no
 * live row has any more (they can only be needed again if such a row comes back; the
 * dispatcher's result cache then answers them). */
static int prune_cmps(rank_run_t *R)
{
    sqlite3_stmt *live = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &live, R->err, R->errsz, "SELECT 1 FROM st_%d_rows WHERE k=?1 AND w>0 LIMIT 1",
                            R->op->node->id);
    for (int i = 0; i < R->gone.n && !rc; i++) {
        const ss_buf_t *k = &R->gone.v[i].k;
        sqlite3_reset(live);
        sqlite3_bind_blob(live, 1, k->data ? k->data : "", (int)k->len, SQLITE_STATIC);
        int s = sqlite3_step(live);
        sqlite3_reset(live);
        if (s == SQLITE_ROW)
            continue;
        if (s != SQLITE_DONE)
            rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_topk prune");
        else
            rc = ss_sem_pairs_drop(&R->pairs, -1, k->data, k->len, NULL, R->err, R->errsz);
    }
    sqlite3_finalize(live);
    return rc;
}

/* One entry of the delta: adjusts the weight; a row disappearing is removed, one
 * appearing is added to X (placed later with the batch's other new rows). */
static int rank_entry(rank_run_t *R, rank_state_t *S, const ss_row_t *row, int64_t dw, tlist_t *X)
{
    sem_topk_t *t = R->op->impl;
    titem_t it;
    memset(&it, 0, sizeof it);
    int rc = ss_row_encode(row, &it.r);
    if (!rc)
        rc = ss_sem_proj(row, t->cols, t->ncols, &it.k);
    int64_t w = 0;
    int zone = -1;
    sqlite3_reset(S->get);
    sqlite3_bind_blob(S->get, 1, it.r.data, (int)it.r.len, SQLITE_STATIC);
    if (!rc && sqlite3_step(S->get) == SQLITE_ROW) {
        w = sqlite3_column_int64(S->get, 1);
        zone = sqlite3_column_int(S->get, 2);
    }
    sqlite3_reset(S->get);
    int64_t nw = w + dw;
    it.w = nw;
    if (rc) {
    } else if (w > 0 && nw > 0) { /* still present: weight only */
        item_setw(S, &it.r, nw);
        rc = row_put(R, S, &it, zone, 0);
    } else if (w > 0) {
        rc = rank_remove(R, S, &it.r);
        if (!rc && R->prune)
            rc = note_gone(R, &it.k);
        if (!rc && nw < 0)
            rc = row_put(R, S, &it, Z_NEG, 0);
    } else if (nw > 0) {
        rc = list_insert(X, X->n, &it);
    } else if (nw == 0) {
        rc = rank_remove(R, S, &it.r);
    } else {
        rc = row_put(R, S, &it, Z_NEG, 0);
    }
    item_free(&it);
    return rc;
}

/* An update that keeps the template's columns (old and new rows with the same
 * projection and weight) keeps its place: no comparison. Returns 1 in *done if so. */
static int rank_replace(rank_run_t *R, rank_state_t *S, const ss_row_t *old, const ss_row_t *nw, int64_t w,
                        int *done)
{
    sem_topk_t *t = R->op->impl;
    titem_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    *done = 0;
    int rc = ss_sem_proj(old, t->cols, t->ncols, &a.k);
    if (!rc) rc = ss_sem_proj(nw, t->cols, t->ncols, &b.k);
    if (!rc) rc = ss_row_encode(old, &a.r);
    if (!rc) rc = ss_row_encode(nw, &b.r);
    int zone = -1;
    int64_t cur = 0;
    if (!rc && buf_cmp(&a.k, &b.k) == 0) {
        sqlite3_reset(S->get);
        sqlite3_bind_blob(S->get, 1, a.r.data, (int)a.r.len, SQLITE_STATIC);
        if (sqlite3_step(S->get) == SQLITE_ROW) {
            cur = sqlite3_column_int64(S->get, 1);
            zone = sqlite3_column_int(S->get, 2);
        }
        sqlite3_reset(S->get);
        sqlite3_reset(S->get);
        sqlite3_bind_blob(S->get, 1, b.r.data, (int)b.r.len, SQLITE_STATIC);
        int nexists = sqlite3_step(S->get) == SQLITE_ROW;
        sqlite3_reset(S->get);
        if (cur == w && zone >= Z_TOP && zone <= Z_REST && !nexists) {
            tlist_t *l = zone == Z_TOP ? &S->T : zone == Z_BUF ? &S->B : NULL;
            int i = l ? list_find(l, &a.r) : -1;
            if (i >= 0) {
                ss_buf_free(&l->v[i].r);
                l->v[i].r = b.r;
                memset(&b.r, 0, sizeof b.r);
            }
            sqlite3_reset(S->del);
            sqlite3_bind_blob(S->del, 1, a.r.data, (int)a.r.len, SQLITE_STATIC);
            if (sqlite3_step(S->del) != SQLITE_DONE)
                rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_topk del");
            sqlite3_reset(S->del);
            if (!rc && i < 0) {
                b.w = w;
                rc = row_put(R, S, &b, zone, 0);
            }
            *done = !rc;
        }
    }
    item_free(&a);
    item_free(&b);
    return rc;
}

static int rank_save(rank_run_t *R, rank_state_t *S)
{
    int rc = SS_OK;
    for (int i = 0; i < S->T.n && !rc; i++)
        rc = row_put(R, S, &S->T.v[i], Z_TOP, i);
    for (int i = 0; i < S->B.n && !rc; i++)
        rc = row_put(R, S, &S->B.v[i], Z_BUF, i);
    return rc;
}

static int rank_apply(rank_run_t *R, const ss_zset_t *in, tlist_t *top)
{
    int id = R->op->node->id;
    rank_state_t S;
    memset(&S, 0, sizeof S);
    int rc = ss_sem_prepare(R->ctx->db, &S.ins, R->err, R->errsz,
                            "INSERT OR REPLACE INTO st_%d_rows(r,k,w,zone,pos,p) VALUES(?1,?2,?3,?4,?5,?6)", id);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &S.del, R->err, R->errsz, "DELETE FROM st_%d_rows WHERE r=?1", id);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &S.get, R->err, R->errsz, "SELECT k, w, zone FROM st_%d_rows WHERE r=?1", id);
    if (!rc)
        rc = load_list(R, Z_TOP, &S.T);
    if (!rc)
        rc = load_list(R, Z_BUF, &S.B);
    /* updates that keep the template's columns stay in place; then deletions, then
     * insertions (an update's old row leaves before its new one enters) */
    char *skip = calloc(in->n ? in->n : 1, 1);
    if (!skip && !rc)
        rc = SS_ERR_NOMEM;
    for (size_t i = 0; i < in->n && !rc; i++) {
        if (in->e[i].w >= 0)
            continue;
        sem_topk_t *t = R->op->impl;
        for (size_t j = 0; j < in->n && !rc; j++) {
            if (skip[j] || in->e[j].w != -in->e[i].w ||
                ss_row_cmp_cols(in->e[i].row, t->cols, in->e[j].row, t->cols, t->ncols) != 0)
                continue;
            int done = 0;
            rc = rank_replace(R, &S, in->e[i].row, in->e[j].row, in->e[j].w, &done);
            if (done) {
                skip[i] = skip[j] = 1;
                break;
            }
        }
    }
    tlist_t X = {0};
    for (size_t i = 0; i < in->n && !rc; i++)
        if (in->e[i].w < 0 && !skip[i])
            rc = rank_entry(R, &S, in->e[i].row, in->e[i].w, &X);
    if (!rc) /* after all removals: rows deleted together are never compared */
        rc = refill(R, &S);
    for (size_t i = 0; i < in->n && !rc; i++)
        if (in->e[i].w > 0 && !skip[i])
            rc = rank_entry(R, &S, in->e[i].row, in->e[i].w, &X);
    if (!rc)
        rc = refill(R, &S);
    if (!rc)
        rc = rank_insert_batch(R, &S, &X);
    list_free(&X);
    free(skip);
    if (!rc)
        rc = rank_save(R, &S);
    if (!rc) {
        *top = S.T;
        memset(&S.T, 0, sizeof S.T);
    }
    list_free(&S.T);
    list_free(&S.B);
    sqlite3_finalize(S.ins);
    sqlite3_finalize(S.del);
    sqlite3_finalize(S.get);
    return rc;
}

/* ------------------------------------------------------------------ score */

typedef struct score_run {
    ss_op_t *op;
    sqlite3_stmt *up;
    ss_buf_t part;
    char *err;
    size_t errsz;
} score_run_t;

/* The encoded partition columns of row (empty without partitions). */
static int part_key(const ss_op_t *op, const ss_row_t *row, ss_buf_t *out)
{
    ss_buf_reset(out);
    const ss_plan_node_t *n = op->node;
    return n->ngroup ? ss_state_encode_cols(row, n->group_cols, n->ngroup, 1, out, NULL) : SS_OK;
}

static int score_build(void *ud, const ss_row_t *row, ss_buf_t *prompt, ss_infer_req_t *req)
{
    score_run_t *s = ud;
    size_t pre = 0;
    int rc = ss_sem_prompt(prompt, SCORE_TASK, s->op->node->tmpl, row, NULL, " (1 to 10)", &pre);
    ss_sem_req_score(req, NULL, pre);
    return rc;
}

static int score_encode(void *ud, const ss_infer_res_t *res, ss_buf_t *out)
{
    (void)ud;
    return ss_buf_printf(out, "%.17g", res->score);
}

static int score_emit(void *ud, const ss_row_t *row, int64_t w, const char *v, size_t vn, char *err,
                      size_t errsz)
{
    score_run_t *s = ud;
    (void)vn;
    ss_buf_t r = SS_BUF_INIT;
    int rc = ss_row_encode(row, &r);
    if (!rc)
        rc = part_key(s->op, row, &s->part);
    if (rc) {
        ss_buf_free(&r);
        return ss_seterr(err, errsz, rc, "sem_topk: out of memory");
    }
    sqlite3_reset(s->up);
    sqlite3_bind_blob(s->up, 1, r.data, (int)r.len, SQLITE_STATIC);
    sqlite3_bind_int64(s->up, 2, w);
    sqlite3_bind_double(s->up, 3, strtod(v, NULL));
    bind_part(s->up, 4, &s->part);
    if (sqlite3_step(s->up) != SQLITE_DONE)
        rc = ss_seterr(err, errsz, SS_ERR_SQLITE, "sem_topk rows: %s", sqlite3_errmsg(sqlite3_db_handle(s->up)));
    sqlite3_reset(s->up);
    ss_buf_free(&r);
    return rc;
}

/* Scores the new rows of in (memoised) and records every row's weight and score. */
static int score_apply(ss_op_t *op, ss_op_ctx_t *ctx, const ss_zset_t *in, char *err, size_t errsz)
{
    sem_topk_t *t = op->impl;
    int id = op->node->id;
    score_run_t s = {op, NULL, SS_BUF_INIT, err, errsz};
    ss_sem_kv_t kv;
    int rc = ss_sem_kv_open(&kv, ctx->db, id, "memo", err, errsz);
    if (rc)
        return rc;
    rc = ss_sem_prepare(ctx->db, &s.up, err, errsz,
                        "INSERT INTO st_%d_rows(r,k,w,zone,pos,s,p) VALUES(?1,x'',?2,0,0,?3,?4) "
                        "ON CONFLICT(r) DO UPDATE SET w=w+excluded.w", id);
    ss_sem_pointwise_t pw = {
        .op = op, .ctx = ctx, .kv = &kv, .cols = t->cols, .ncols = t->ncols, .gc = ss_sem_memo_prune(op->node),
        .build = score_build, .encode = score_encode, .emit = score_emit, .ud = &s,
    };
    if (!rc)
        rc = ss_sem_pointwise_apply(&pw, in, err, errsz);
    sqlite3_finalize(s.up);
    ss_buf_free(&s.part);
    ss_sem_kv_close(&kv);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz, "DELETE FROM st_%d_rows WHERE w=0", id);
    return rc;
}

/* The top k of partition part by score. */
static int score_top(ss_op_t *op, ss_op_ctx_t *ctx, const ss_buf_t *part, tlist_t *top, char *err, size_t errsz)
{
    sem_topk_t *t = op->impl;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT r, w FROM st_%d_rows WHERE p=?1 AND w>0 ORDER BY s %s, r LIMIT %d", op->node->id,
                            t->desc ? "DESC" : "ASC", t->k);
    if (!rc)
        bind_part(st, 1, part);
    int q = SQLITE_DONE;
    while (!rc && (q = sqlite3_step(st)) == SQLITE_ROW) {
        titem_t it;
        memset(&it, 0, sizeof it);
        rc = ss_buf_append(&it.r, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        it.w = sqlite3_column_int64(st, 1);
        if (!rc)
            rc = list_insert(top, top->n, &it);
        item_free(&it);
    }
    if (!rc && q != SQLITE_DONE)
        rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_topk top");
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------ output */

static int emit_row(const ss_buf_t *r, int64_t w, ss_zset_t *out)
{
    ss_row_t *row = NULL;
    int rc = ss_row_decode(r->data, r->len, &row);
    return rc ? rc : ss_zset_add(out, row, w);
}

/* Loads the top last emitted for partition part. */
static int load_out(ss_op_t *op, ss_op_ctx_t *ctx, const ss_buf_t *part, tlist_t *old, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT r, w FROM st_%d_out WHERE p=?1", op->node->id);
    if (!rc)
        bind_part(st, 1, part);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        titem_t it;
        memset(&it, 0, sizeof it);
        rc = ss_buf_append(&it.r, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        it.w = sqlite3_column_int64(st, 1);
        if (!rc)
            rc = list_insert(old, old->n, &it);
        item_free(&it);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Stores top as partition part's emitted top. */
static int store_out(ss_op_t *op, ss_op_ctx_t *ctx, const ss_buf_t *part, const tlist_t *top, char *err,
                     size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int id = op->node->id;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "DELETE FROM st_%d_out WHERE p=?1", id);
    if (!rc) {
        bind_part(st, 1, part);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_topk out");
        sqlite3_finalize(st);
        st = NULL;
    }
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "INSERT INTO st_%d_out(r,w,p) VALUES(?1,?2,?3)", id);
    for (int i = 0; i < top->n && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, top->v[i].r.data, (int)top->v[i].r.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, top->v[i].w);
        bind_part(st, 3, part);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_topk out");
    }
    if (st)
        sqlite3_finalize(st);
    return rc;
}

/* Emits partition part's new top minus the previously emitted one and stores the new one. */
static int emit_diff(ss_op_t *op, ss_op_ctx_t *ctx, const ss_buf_t *part, tlist_t *top, ss_zset_t *out, char *err,
                     size_t errsz)
{
    tlist_t old = {0};
    int rc = load_out(op, ctx, part, &old, err, errsz);
    for (int i = 0; i < top->n && !rc; i++) {
        int j = list_find(&old, &top->v[i].r);
        int64_t was = j >= 0 ? old.v[j].w : 0;
        if (j >= 0)
            old.v[j].w = 0;
        if (top->v[i].w != was) {
            rc = emit_row(&top->v[i].r, top->v[i].w - was, out);
            op->stats.rows_out++;
        }
    }
    for (int j = 0; j < old.n && !rc; j++)
        if (old.v[j].w) {
            rc = emit_row(&old.v[j].r, -old.v[j].w, out);
            op->stats.rows_out++;
        }
    list_free(&old);
    return rc ? rc : store_out(op, ctx, part, top, err, errsz);
}

/* ------------------------------------------------------------------ partitions */

typedef struct pentry {
    ss_buf_t key;
    size_t i; /* index in the input */
} pentry_t;

static int pentry_cmp(const void *a, const void *b)
{
    const pentry_t *x = a, *y = b;
    int c = buf_cmp(&x->key, &y->key);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* One partition's share of a batch: the top recomputed and its change emitted. */
static int apply_part(ss_op_t *op, ss_op_ctx_t *ctx, rank_run_t *R, const ss_buf_t *part, const ss_zset_t *sub,
                      ss_zset_t *out, char *err, size_t errsz)
{
    sem_topk_t *t = op->impl;
    tlist_t top = {0};
    int rc = SS_OK;
    if (t->rank) {
        R->part = part;
        rc = rank_apply(R, sub, &top);
    } else
        rc = score_top(op, ctx, part, &top, err, errsz);
    if (!rc)
        rc = emit_diff(op, ctx, part, &top, out, err, errsz);
    if (!rc)
        rc = ss_winstate_note(&t->ws, sub->e[0].row, part, err, errsz);
    list_free(&top);
    return rc;
}

/* Splits in by partition (sorted by key, input order kept within one) and applies each part. */
static int apply_parts(ss_op_t *op, ss_op_ctx_t *ctx, rank_run_t *R, const ss_zset_t *in, ss_zset_t *out,
                       char *err, size_t errsz)
{
    pentry_t *pe = calloc(in->n, sizeof *pe);
    ss_zentry_t *ev = calloc(in->n, sizeof *ev);
    int rc = pe && ev ? SS_OK : SS_ERR_NOMEM;
    for (size_t i = 0; i < in->n && !rc; i++) {
        pe[i].i = i;
        rc = part_key(op, in->e[i].row, &pe[i].key);
    }
    if (rc)
        rc = ss_seterr(err, errsz, rc, "sem_topk: out of memory");
    else
        qsort(pe, in->n, sizeof *pe, pentry_cmp);
    for (size_t i = 0; i < in->n && !rc;) {
        size_t e = i;
        for (; e < in->n && buf_cmp(&pe[i].key, &pe[e].key) == 0; e++)
            ev[e - i] = in->e[pe[e].i];
        ss_zset_t sub = {ev, e - i, e - i, 0}; /* borrows in's rows */
        rc = apply_part(op, ctx, R, &pe[i].key, &sub, out, err, errsz);
        i = e;
    }
    for (size_t i = 0; pe && i < in->n; i++)
        ss_buf_free(&pe[i].key);
    free(pe);
    free(ev);
    return rc;
}

/* ------------------------------------------------------------------ windows */

typedef struct drop_arg {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
} drop_arg_t;

/* Moves the memo references of partition part's rows (SEM_SCORE) or notes their projections
 * for pruning (SEM_RANK), before the rows go. */
static int release_part(rank_run_t *R, ss_sem_kv_t *memo, const ss_buf_t *part)
{
    sem_topk_t *t = R->op->impl;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz, "SELECT r, k, w FROM st_%d_rows WHERE p=?1 AND w>0",
                            R->op->node->id);
    if (!rc)
        bind_part(st, 1, part);
    ss_buf_t k = SS_BUF_INIT;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        ss_buf_reset(&k);
        if (t->rank) {
            rc = ss_buf_append(&k, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
            if (!rc)
                rc = note_gone(R, &k);
            continue;
        }
        ss_row_t *row = NULL;
        rc = ss_row_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), &row);
        if (!rc)
            rc = ss_sem_proj(row, t->cols, t->ncols, &k);
        if (!rc)
            rc = ss_sem_kv_ref(memo, k.data, k.len, -sqlite3_column_int64(st, 2), R->prune, R->err, R->errsz);
        ss_row_free(row);
    }
    ss_buf_free(&k);
    sqlite3_finalize(st);
    return rc;
}

/* A closed window's partition: its rows, its emitted top and their memo entries go. */
static int drop_part(void *arg, const void *key, size_t n, char *err, size_t errsz)
{
    drop_arg_t *d = arg;
    int id = d->op->node->id;
    ss_buf_t part = {(char *)key, n, n};
    rank_run_t R = {d->op, d->ctx, {0}, err, errsz, {0}, ss_sem_memo_prune(d->op->node), {0}, &part};
    ss_sem_kv_t memo;
    int rc = ss_sem_kv_open(&memo, d->ctx->db, id, "memo", err, errsz);
    if (rc)
        return rc;
    rc = release_part(&R, &memo, &part);
    ss_sem_kv_close(&memo);
    static const char *const tables[] = {"rows", "out"};
    for (size_t t = 0; !rc && t < SS_ARRAY_LEN(tables); t++) {
        sqlite3_stmt *st = NULL;
        rc = ss_sem_prepare(d->ctx->db, &st, err, errsz, "DELETE FROM st_%d_%s WHERE p=?1", id, tables[t]);
        if (!rc) {
            bind_part(st, 1, &part);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = ss_sem_sqlerr(d->ctx->db, err, errsz, "sem_topk window close");
        }
        sqlite3_finalize(st);
    }
    if (!rc && R.prune && R.gone.n && !(rc = ss_sem_pairs_open(&R.pairs, d->ctx->db, id, "cmp", err, errsz))) {
        rc = ss_sem_kv_open(&R.cmp, d->ctx->db, id, "cmp", err, errsz);
        if (!rc)
            rc = prune_cmps(&R);
        ss_sem_kv_close(&R.cmp);
        ss_sem_pairs_close(&R.pairs);
    }
    list_free(&R.gone);
    return rc;
}

static int topk_advance(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, int64_t *due_us, char *err, size_t errsz)
{
    (void)out;
    *due_us = SS_TIME_NONE;
    drop_arg_t d = {op, ctx};
    return ss_winstate_close(&((sem_topk_t *)op->impl)->ws, op->watermark, drop_part, &d, err, errsz);
}

static void topk_rollback(ss_op_t *op) { ss_winstate_rollback(&((sem_topk_t *)op->impl)->ws); }

/* ------------------------------------------------------------------ vtable */

/* Tables of an older version lack the partition column p: it is added (x'' = no partition). */
static int add_part_column(ss_op_ctx_t *ctx, int id, const char *table, char *err, size_t errsz)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT p FROM st_%d_%s LIMIT 0", id, table);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(ctx->db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_finalize(st);
        return SS_OK;
    }
    return ss_sem_exec(ctx->db, err, errsz, "ALTER TABLE st_%d_%s ADD COLUMN p BLOB NOT NULL DEFAULT x''", id, table);
}

static int topk_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    int id = op->node->id;
    int rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_rows(r BLOB PRIMARY KEY, k BLOB, w INTEGER, "
                         "zone INTEGER, pos INTEGER, s REAL, p BLOB NOT NULL DEFAULT x'');"
                         "CREATE INDEX IF NOT EXISTS st_%d_rows_k ON st_%d_rows(k);"
                         "CREATE TABLE IF NOT EXISTS st_%d_out(r BLOB PRIMARY KEY, w INTEGER, "
                         "p BLOB NOT NULL DEFAULT x'')",
                         id, id, id, id);
    if (!rc)
        rc = add_part_column(ctx, id, "rows", err, errsz);
    if (!rc)
        rc = add_part_column(ctx, id, "out", err, errsz);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "DROP INDEX IF EXISTS st_%d_rows_zone;"
                         "CREATE INDEX IF NOT EXISTS st_%d_rows_pz ON st_%d_rows(p, zone, pos);"
                         "CREATE INDEX IF NOT EXISTS st_%d_rows_ps ON st_%d_rows(p, s);"
                         "CREATE INDEX IF NOT EXISTS st_%d_out_p ON st_%d_out(p)",
                         id, id, id, id, id, id, id);
    if (!rc)
        rc = ss_sem_kv_create(ctx->db, id, "memo", err, errsz);
    if (!rc)
        rc = ss_sem_kv_create(ctx->db, id, "cmp", err, errsz);
    return rc ? rc : ss_winstate_init(&((sem_topk_t *)op->impl)->ws, op->node, ctx->db, err, errsz);
}

static int topk_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                      char *err, size_t errsz)
{
    sem_topk_t *t = op->impl;
    (void)port;
    if (!in->n)
        return SS_OK;
    op->stats.batches++;
    op->stats.rows_in += (int64_t)in->n;
    ss_zset_t open; /* without the rows of windows already closed (their top is final) */
    ss_zset_init(&open);
    if (t->ws.on && t->ws.closed != SS_TIME_NONE) {
        if (ss_zset_extend(&open, in, 1)) {
            ss_zset_destroy(&open);
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        }
        ss_winstate_filter(&t->ws, op->node->view, &open);
        in = &open;
    }
    rank_run_t R = {op, ctx, {0}, err, errsz, {0}, ss_sem_memo_prune(op->node), {0}, NULL};
    int rc = SS_OK;
    if (!in->n) {
    } else if (t->rank) {
        rc = ss_sem_kv_open(&R.cmp, ctx->db, op->node->id, "cmp", err, errsz);
        if (!rc && R.prune)
            rc = ss_sem_pairs_open(&R.pairs, ctx->db, op->node->id, "cmp", err, errsz);
        if (!rc)
            rc = apply_parts(op, ctx, &R, in, out, err, errsz);
        if (!rc && R.prune)
            rc = prune_cmps(&R);
        ss_sem_pairs_close(&R.pairs);
        ss_sem_kv_close(&R.cmp);
        list_free(&R.gone);
    } else {
        rc = score_apply(op, ctx, in, err, errsz);
        if (!rc)
            rc = apply_parts(op, ctx, &R, in, out, err, errsz);
    }
    ss_zset_destroy(&open);
    return rc;
}

static int topk_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT r, w FROM st_%d_out", op->node->id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        ss_row_t *row = NULL;
        rc = ss_row_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), &row);
        if (!rc)
            rc = ss_zset_add(out, row, sqlite3_column_int64(st, 1));
    }
    sqlite3_finalize(st);
    return rc;
}

static const char *topk_strategy(const ss_op_t *op)
{
    const sem_topk_t *t = op->impl;
    return t->rank ? "pairwise comparisons memoised per pair; insert below the k-th: 1 comparison, "
                     "entering: 1 + ceil(log2 k); deletes promote from a buffer of extra candidates"
                   : "1 SCORE call per inserted row, memoised; 0 calls per delete or unchanged update";
}

static void topk_destroy(ss_op_t *op)
{
    if (op->impl)
        ss_winstate_free(&((sem_topk_t *)op->impl)->ws);
    free(op->impl);
    op->impl = NULL;
}

static const ss_op_vtable_t sem_topk_vt = {
    .name = "sem_topk",
    .kind = SS_OPK_NONLINEAR,
    .init = topk_init,
    .apply = topk_apply,
    .snapshot = topk_snapshot,
    .strategy = topk_strategy,
    .destroy = topk_destroy,
    .rollback = topk_rollback,
};

int ss_op_sem_topk_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (!N->tmpl || N->nin < 1 || N->limit < 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_topk (node %d): needs a template, an input and LIMIT k",
                         N->id);
    int rc = ss_sem_memo_check(N, err, errsz);
    if (rc)
        return rc;
    sem_topk_t *t = calloc(1, sizeof *t);
    if (!t)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    t->rank = N->sem == SS_SEM_RANK;
    t->k = N->limit > 100000 ? 100000 : (int)N->limit;
    int64_t b = ss_plan_opt_int(N, "buffer", t->k);
    t->buffer = b < 1 ? 1 : b > 100000 ? 100000 : (int)b;
    t->desc = N->desc;
    int c0[SS_SEM_MAXCOLS], c1[SS_SEM_MAXCOLS];
    int n0 = ss_sem_tmpl_cols(N, 0, c0), n1 = ss_sem_tmpl_cols(N, 1, c1);
    for (int i = 0; i < n0; i++)
        t->cols[t->ncols++] = c0[i];
    for (int i = 0; i < n1 && t->ncols < SS_SEM_MAXCOLS; i++) {
        int dup = 0;
        for (int j = 0; j < t->ncols; j++)
            dup |= t->cols[j] == c1[i];
        if (!dup)
            t->cols[t->ncols++] = c1[i];
    }
    op->impl = t;
    op->vt = &sem_topk_vt;
    op->advance = topk_advance;
    return SS_OK;
}
