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
 * Deleting a row of T promotes the head of B after merging P into B by binary insertion;
 * an empty B is refilled lazily from R. With a consistent (total-order) comparator the
 * result equals a from-scratch run whatever order rows came in.
 */
#include "ss_sem.h"

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
} rank_run_t;

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
 * the missing ones are asked in one dispatcher call. */
static int ensure_cmps(rank_run_t *R, titem_t **a, titem_t **b, int n)
{
    ss_buf_t *prompts = calloc((size_t)(n ? n : 1), sizeof *prompts);
    ss_buf_t *keys = calloc((size_t)(n ? n : 1), sizeof *keys);
    ss_infer_req_t *reqs = calloc((size_t)(n ? n : 1), sizeof *reqs);
    ss_infer_res_t *res = calloc((size_t)(n ? n : 1), sizeof *res);
    int m = 0, rc = prompts && keys && reqs && res ? SS_OK : SS_ERR_NOMEM;
    ss_buf_t v = SS_BUF_INIT;
    for (int i = 0; i < n && !rc; i++) {
        ss_buf_t *key = &keys[m];
        ss_buf_reset(key);
        rc = cmp_key(a[i], b[i], key);
        int found = 0;
        if (!rc)
            rc = ss_sem_kv_get(&R->cmp, key->data, key->len, &v, &found, R->err, R->errsz);
        for (int j = 0; j < m && !rc && !found; j++)
            found = buf_cmp(&keys[j], key) == 0;
        if (rc || found)
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
    for (int i = 0; i < m && !rc; i++)
        rc = ss_sem_kv_put(&R->cmp, keys[i].data, keys[i].len, ss_sem_first(&res[i]) ? "1" : "0", 1,
                           R->err, R->errsz);
    for (int i = 0; i < n; i++) {
        if (prompts) ss_buf_free(&prompts[i]);
        if (keys) ss_buf_free(&keys[i]);
    }
    ss_buf_free(&v);
    free(prompts);
    free(keys);
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

/* *better = 1 if x ranks before y. */
static int ranks_before(rank_run_t *R, titem_t *x, titem_t *y, int *better)
{
    sem_topk_t *t = R->op->impl;
    if (buf_cmp(&x->k, &y->k) == 0) {
        *better = buf_cmp(&x->r, &y->r) < 0;
        return SS_OK;
    }
    titem_t *a, *b;
    int sw = canon(x, y, &a, &b);
    int rc = ensure_cmps(R, &a, &b, 1);
    ss_buf_t key = SS_BUF_INIT, v = SS_BUF_INIT;
    int found = 0;
    if (!rc)
        rc = cmp_key(a, b, &key);
    if (!rc)
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

/* Position in l[lo..hi) where x belongs (binary search). */
static int bsearch_pos(rank_run_t *R, tlist_t *l, int lo, int hi, titem_t *x, int *pos)
{
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, better = 0;
        int rc = ranks_before(R, x, &l->v[mid], &better);
        if (rc)
            return rc;
        if (better)
            hi = mid;
        else
            lo = mid + 1;
    }
    *pos = lo;
    return SS_OK;
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

/* Loads the rows of a zone (P or R) and binary-inserts them into B. */
static int merge_zone(rank_run_t *R, rank_state_t *S, int zone)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz,
                            "SELECT r, k, w FROM st_%d_rows WHERE zone=%d ORDER BY r", R->op->node->id, zone);
    tlist_t L = {0};
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
    for (int i = 0; i < L.n && !rc; i++) {
        int pos = 0;
        rc = bsearch_pos(R, &S->B, 0, S->B.n, &L.v[i], &pos);
        if (!rc)
            rc = row_put(R, S, &L.v[i], Z_BUF, 0);
        if (!rc)
            rc = list_insert(&S->B, pos, &L.v[i]);
        if (!rc)
            rc = trim_buffer(R, S);
    }
    list_free(&L);
    return rc;
}

static int zone_count(rank_run_t *R, int zone, int *n)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz,
                            "SELECT count(*) FROM st_%d_rows WHERE zone=%d", R->op->node->id, zone);
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

/* Places a new row (it) among T, B, P. */
static int rank_insert(rank_run_t *R, rank_state_t *S, titem_t *it)
{
    sem_topk_t *t = R->op->impl;
    int rc = SS_OK, pos = 0;
    if (S->T.n < t->k) {
        rc = bsearch_pos(R, &S->T, 0, S->T.n, it, &pos);
        return rc ? rc : list_insert(&S->T, pos, it);
    }
    int better = 0;
    rc = ranks_before(R, it, &S->T.v[t->k - 1], &better);
    if (rc)
        return rc;
    if (!better) {
        rc = row_put(R, S, it, Z_POOL, 0);
        item_free(it);
        return rc;
    }
    rc = bsearch_pos(R, &S->T, 0, t->k - 1, it, &pos);
    if (!rc)
        rc = list_insert(&S->T, pos, it);
    if (!rc) {
        titem_t last;
        list_take(&S->T, S->T.n - 1, &last);
        rc = list_insert(&S->B, 0, &last);
        item_free(&last);
    }
    return rc ? rc : trim_buffer(R, S);
}

/* Removes row r (all of it); refills T if it was there. */
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
    return rc ? rc : refill(R, S);
}

static int load_list(rank_run_t *R, int zone, tlist_t *l)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz,
                            "SELECT r, k, w FROM st_%d_rows WHERE zone=%d ORDER BY pos", R->op->node->id, zone);
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

/* One entry of the delta: adjusts the weight; a row appearing is inserted, one
 * disappearing removed. */
static int rank_entry(rank_run_t *R, rank_state_t *S, const ss_row_t *row, int64_t dw)
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
        if (!rc && nw < 0)
            rc = row_put(R, S, &it, Z_NEG, 0);
    } else if (nw > 0) {
        rc = rank_insert(R, S, &it);
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

/* Batches the first comparison (against T's last) of every new row. */
static int prefetch(rank_run_t *R, rank_state_t *S, const ss_zset_t *in, const char *skip)
{
    sem_topk_t *t = R->op->impl;
    if (S->T.n < t->k)
        return SS_OK;
    titem_t *items = calloc(in->n ? in->n : 1, sizeof *items);
    titem_t **a = calloc(in->n ? in->n : 1, sizeof *a), **b = calloc(in->n ? in->n : 1, sizeof *b);
    int n = 0, rc = items && a && b ? SS_OK : SS_ERR_NOMEM;
    titem_t *pivot = &S->T.v[t->k - 1];
    for (size_t i = 0; i < in->n && !rc; i++) {
        if (in->e[i].w <= 0 || skip[i])
            continue;
        rc = ss_sem_proj(in->e[i].row, t->cols, t->ncols, &items[n].k);
        if (!rc)
            rc = ss_row_encode(in->e[i].row, &items[n].r);
        if (rc || buf_cmp(&items[n].k, &pivot->k) == 0)
            continue;
        canon(&items[n], pivot, &a[n], &b[n]);
        n++;
    }
    if (!rc)
        rc = ensure_cmps(R, a, b, n);
    for (size_t i = 0; items && i < in->n; i++)
        item_free(&items[i]);
    free(items);
    free(a);
    free(b);
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
                            "INSERT OR REPLACE INTO st_%d_rows(r,k,w,zone,pos) VALUES(?1,?2,?3,?4,?5)", id);
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
    for (size_t i = 0; i < in->n && !rc; i++)
        if (in->e[i].w < 0 && !skip[i])
            rc = rank_entry(R, &S, in->e[i].row, in->e[i].w);
    if (!rc)
        rc = prefetch(R, &S, in, skip);
    for (size_t i = 0; i < in->n && !rc; i++)
        if (in->e[i].w > 0 && !skip[i])
            rc = rank_entry(R, &S, in->e[i].row, in->e[i].w);
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
    char *err;
    size_t errsz;
} score_run_t;

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
    if (rc)
        return rc;
    sqlite3_reset(s->up);
    sqlite3_bind_blob(s->up, 1, r.data, (int)r.len, SQLITE_STATIC);
    sqlite3_bind_int64(s->up, 2, w);
    sqlite3_bind_double(s->up, 3, strtod(v, NULL));
    if (sqlite3_step(s->up) != SQLITE_DONE)
        rc = ss_seterr(err, errsz, SS_ERR_SQLITE, "sem_topk rows: %s", sqlite3_errmsg(sqlite3_db_handle(s->up)));
    sqlite3_reset(s->up);
    ss_buf_free(&r);
    return rc;
}

static int score_apply(ss_op_t *op, ss_op_ctx_t *ctx, const ss_zset_t *in, tlist_t *top, char *err, size_t errsz)
{
    sem_topk_t *t = op->impl;
    int id = op->node->id;
    score_run_t s = {op, NULL, err, errsz};
    ss_sem_kv_t kv;
    int rc = ss_sem_kv_open(&kv, ctx->db, id, "memo", err, errsz);
    if (rc)
        return rc;
    rc = ss_sem_prepare(ctx->db, &s.up, err, errsz,
                        "INSERT INTO st_%d_rows(r,k,w,zone,pos,s) VALUES(?1,x'',?2,0,0,?3) "
                        "ON CONFLICT(r) DO UPDATE SET w=w+excluded.w", id);
    ss_sem_pointwise_t pw = {
        .op = op, .ctx = ctx, .kv = &kv, .cols = t->cols, .ncols = t->ncols, .gc = 1,
        .build = score_build, .encode = score_encode, .emit = score_emit, .ud = &s,
    };
    if (!rc)
        rc = ss_sem_pointwise_apply(&pw, in, err, errsz);
    sqlite3_finalize(s.up);
    ss_sem_kv_close(&kv);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz, "DELETE FROM st_%d_rows WHERE w=0", id);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT r, w FROM st_%d_rows WHERE w>0 ORDER BY s %s, r LIMIT %d", id,
                            t->desc ? "DESC" : "ASC", t->k);
    int q;
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

/* Emits new top minus the previously emitted one and stores the new one. */
static int emit_diff(ss_op_t *op, ss_op_ctx_t *ctx, tlist_t *top, ss_zset_t *out, char *err, size_t errsz)
{
    int id = op->node->id;
    tlist_t old = {0};
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT r, w FROM st_%d_out", id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        titem_t it;
        memset(&it, 0, sizeof it);
        rc = ss_buf_append(&it.r, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        it.w = sqlite3_column_int64(st, 1);
        if (!rc)
            rc = list_insert(&old, old.n, &it);
        item_free(&it);
    }
    sqlite3_finalize(st);
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
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz, "DELETE FROM st_%d_out", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "INSERT INTO st_%d_out(r,w) VALUES(?1,?2)", id);
    for (int i = 0; i < top->n && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, top->v[i].r.data, (int)top->v[i].r.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, top->v[i].w);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_topk out");
    }
    if (st)
        sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------ vtable */

static int topk_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    int id = op->node->id;
    int rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_rows(r BLOB PRIMARY KEY, k BLOB, w INTEGER, "
                         "zone INTEGER, pos INTEGER, s REAL);"
                         "CREATE INDEX IF NOT EXISTS st_%d_rows_zone ON st_%d_rows(zone, pos);"
                         "CREATE TABLE IF NOT EXISTS st_%d_out(r BLOB PRIMARY KEY, w INTEGER)",
                         id, id, id, id);
    if (!rc)
        rc = ss_sem_kv_create(ctx->db, id, "memo", err, errsz);
    if (!rc)
        rc = ss_sem_kv_create(ctx->db, id, "cmp", err, errsz);
    return rc;
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
    tlist_t top = {0};
    int rc;
    if (t->rank) {
        rank_run_t R = {op, ctx, {0}, err, errsz};
        rc = ss_sem_kv_open(&R.cmp, ctx->db, op->node->id, "cmp", err, errsz);
        if (!rc) {
            rc = rank_apply(&R, in, &top);
            ss_sem_kv_close(&R.cmp);
        }
    } else {
        rc = score_apply(op, ctx, in, &top, err, errsz);
    }
    if (!rc)
        rc = emit_diff(op, ctx, &top, out, err, errsz);
    list_free(&top);
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
};

int ss_op_sem_topk_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (!N->tmpl || N->nin < 1 || N->limit < 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_topk (node %d): needs a template, an input and LIMIT k",
                         N->id);
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
    return SS_OK;
}
