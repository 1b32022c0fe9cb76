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
 * result equals a from-scratch run whatever order rows came in. The comparisons and the
 * rounds (merge_batch, top_sorted) are in sem_rank_merge.c (shared types: sem_topk_int.h).
 *
 * Partitions (option partition_by = 'window_end', src/plan_sem.c): the top k of each
 * partition, the rows of one partition (column p of st_<id>_rows and st_<id>_out: the
 * encoded partition columns, x'' without partitions) ranked among themselves. When the
 * partition holds a window bound (window_col, src/plan_timewin.c) a window's rows, its
 * emitted top and their memo references are dropped once the watermark passes its end
 * (winstate.c); its rows stay in the view, final.
 */
#include "sem_topk_int.h"
#include "ss_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_TASK "Rate how well the input fits the instruction from 1 to 10."

enum { Z_TOP = 0, Z_BUF = 1, Z_POOL = 2, Z_REST = 3, Z_NEG = 4 };

/* Binds partition key p (empty: no partitions) to parameter i. */
static void bind_part(sqlite3_stmt *st, int i, const ss_buf_t *p)
{
    sqlite3_bind_blob(st, i, p && p->data ? p->data : "", p ? (int)p->len : 0, SQLITE_STATIC);
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
        ss__tk_list_take(&S->B, S->B.n - 1, &it);
        rc = row_put(R, S, &it, Z_REST, 0);
        ss__tk_item_free(&it);
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
            rc = ss__tk_list_insert(&L, L.n, &it);
        ss__tk_item_free(&it);
    }
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_topk zone");
    sqlite3_finalize(st);
    titem_t **bp = item_ptrs(&S->B), **lp = item_ptrs(&L);
    pvec_t out = {0}, rest = {0};
    if (!rc && (!bp || !lp))
        rc = SS_ERR_NOMEM;
    if (!rc)
        rc = cap ? ss__tk_merge_batch(R, bp, S->B.n, lp, L.n, cap, &out, &rest) : ss__tk_pv_extend(&rest, lp, L.n);
    for (int i = 0; i < rest.n && !rc; i++)
        rc = row_put(R, S, rest.v[i], Z_REST, 0);
    for (int i = 0; i < out.n && !rc; i++) {
        rc = row_put(R, S, out.v[i], i < cap ? Z_BUF : Z_REST, 0);
        if (!rc && i < cap)
            rc = ss__tk_list_insert(&nb, nb.n, out.v[i]);
    }
    if (!rc) {
        ss__tk_list_free(&S->B);
        S->B = nb;
        memset(&nb, 0, sizeof nb);
    }
    free(bp);
    free(lp);
    ss__tk_pv_free(&out);
    ss__tk_pv_free(&rest);
    ss__tk_list_free(&nb);
    ss__tk_list_free(&L);
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
        ss__tk_list_take(&S->B, 0, &it);
        rc = ss__tk_list_insert(&S->T, S->T.n, &it);
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
        rc = ss__tk_merge_batch(R, tp, S->T.n, xp, X->n, cap, &out, &rest);
    for (int i = 0; i < rest.n && !rc; i++)
        rc = row_put(R, S, rest.v[i], fill ? Z_REST : Z_POOL, 0);
    for (int i = 0; i < out.n && !rc; i++)
        rc = ss__tk_list_insert(i < t->k ? &nt : &spill, i < t->k ? nt.n : spill.n, out.v[i]);
    if (!rc) {
        ss__tk_list_free(&S->T);
        S->T = nt;
        memset(&nt, 0, sizeof nt);
        for (int i = spill.n - 1; i >= 0 && !rc; i--)
            rc = ss__tk_list_insert(&S->B, 0, &spill.v[i]);
    }
    if (!rc)
        rc = trim_buffer(R, S);
    free(tp);
    free(xp);
    ss__tk_pv_free(&out);
    ss__tk_pv_free(&rest);
    ss__tk_list_free(&nt);
    ss__tk_list_free(&spill);
    ss__tk_list_free(X);
    return rc;
}

/* Removes row r (all of it); the caller refills T once all of the batch's rows are removed. */
static int rank_remove(rank_run_t *R, rank_state_t *S, const ss_buf_t *r)
{
    int i = ss__tk_list_find(&S->T, r);
    titem_t it;
    if (i >= 0) {
        ss__tk_list_take(&S->T, i, &it);
        ss__tk_item_free(&it);
    } else if ((i = ss__tk_list_find(&S->B, r)) >= 0) {
        ss__tk_list_take(&S->B, i, &it);
        ss__tk_item_free(&it);
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
            rc = ss__tk_list_insert(l, l->n, &it);
        ss__tk_item_free(&it);
    }
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_topk load");
    sqlite3_finalize(st);
    return rc;
}

static void item_setw(rank_state_t *S, const ss_buf_t *r, int64_t w)
{
    int i = ss__tk_list_find(&S->T, r);
    if (i >= 0)
        S->T.v[i].w = w;
    if ((i = ss__tk_list_find(&S->B, r)) >= 0)
        S->B.v[i].w = w;
}

/* Remembers the projection of a removed row (its comparisons may be dropped at the end). */
static int note_gone(rank_run_t *R, const ss_buf_t *k)
{
    titem_t it;
    memset(&it, 0, sizeof it);
    int rc = ss_buf_append(&it.k, k->data ? k->data : "", k->len);
    if (!rc)
        rc = ss__tk_list_insert(&R->gone, R->gone.n, &it);
    ss__tk_item_free(&it);
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
        rc = ss__tk_list_insert(X, X->n, &it);
    } else if (nw == 0) {
        rc = rank_remove(R, S, &it.r);
    } else {
        rc = row_put(R, S, &it, Z_NEG, 0);
    }
    ss__tk_item_free(&it);
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
    if (!rc && ss__tk_buf_cmp(&a.k, &b.k) == 0) {
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
            int i = l ? ss__tk_list_find(l, &a.r) : -1;
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
    ss__tk_item_free(&a);
    ss__tk_item_free(&b);
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
    ss__tk_list_free(&X);
    free(skip);
    if (!rc)
        rc = rank_save(R, &S);
    if (!rc) {
        *top = S.T;
        memset(&S.T, 0, sizeof S.T);
    }
    ss__tk_list_free(&S.T);
    ss__tk_list_free(&S.B);
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
            rc = ss__tk_list_insert(top, top->n, &it);
        ss__tk_item_free(&it);
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
            rc = ss__tk_list_insert(old, old->n, &it);
        ss__tk_item_free(&it);
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
        int j = ss__tk_list_find(&old, &top->v[i].r);
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
    ss__tk_list_free(&old);
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
    int c = ss__tk_buf_cmp(&x->key, &y->key);
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
    ss__tk_list_free(&top);
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
        for (; e < in->n && ss__tk_buf_cmp(&pe[i].key, &pe[e].key) == 0; e++)
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
    ss__tk_list_free(&R.gone);
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
        ss__tk_list_free(&R.gone);
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
