/*
 * sem_join.c — SEM_JOIN: in[0] ⋈ in[1] on the model's yes/no answer for each pair
 * (template references both sides). Bilinear: a delta on one side is joined with
 * the other side's integrated state (dA⋈B, then (A+dA)⋈dB when the other port runs).
 *
 * Pair decisions are memoised in st_<id>_pair keyed by the two rows' projections on
 * the template's columns, so a pair is never asked twice. Candidate pruning: with
 * option join_candidates=k (and/or threshold=cosine), a new row is only compared with
 * the k rows of the other side nearest to it by embedding (an exact inner-product
 * index per side, kept up to date under inserts and deletes, reloaded from the
 * stored embeddings on restart); unset, the join is exhaustive. The matched pairs
 * are kept in st_<id>_out, so deleting a row retracts exactly what it produced and
 * costs no call.
 *
 * State: st_<id>_s0 / st_<id>_s1 (r = row, vid = index id, w = weight, k = projection,
 * e = embedding), st_<id>_pair (memo), st_<id>_out(l, r) (matched pairs).
 */
#include "ss_cascade.h"
#include "ss_sem.h"

#include <stdlib.h>
#include <string.h>

typedef struct sem_join {
    int cols[2][SS_SEM_MAXCOLS];
    int ncols[2];
    int cand;           /* join_candidates: 0 = exhaustive */
    double threshold;   /* cosine threshold; <= -2 = none */
    double yes_prob;    /* decision cut-off on P(yes); < 0 = P(yes) > P(no) */
    int prune;          /* candidate pruning (join_candidates / threshold) */
    int memo_prune;     /* memo='prune': drop pair decisions of projections no longer live */
    int cascade;        /* option cascade is set (sem_join_cascade.c decides the pairs) */
    ss_sem_join_cascade_t jc;
    ss_sem_vidx_t idx[2];
    int loaded;
} sem_join_t;

typedef struct jrow {
    ss_buf_t r, k;
    int64_t w;
} jrow_t;

static void jrow_free(jrow_t *j)
{
    ss_buf_free(&j->r);
    ss_buf_free(&j->k);
}

/* ------------------------------------------------------------------ index */

static int load_index(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    sem_join_t *J = op->impl;
    if (J->loaded || !J->prune)
        return SS_OK;
    int rc = SS_OK;
    for (int s = 0; s < 2 && !rc; s++) {
        sqlite3_stmt *st = NULL;
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT vid, e FROM st_%d_s%d WHERE w>0 AND e IS NOT NULL",
                            op->node->id, s);
        while (!rc && sqlite3_step(st) == SQLITE_ROW) {
            int n = sqlite3_column_bytes(st, 1) / (int)sizeof(float);
            rc = ss_sem_vidx_add(&J->idx[s], sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1), n, err, errsz);
        }
        sqlite3_finalize(st);
    }
    J->loaded = !rc;
    return rc;
}

/* ------------------------------------------------------------------ pairs */

typedef struct jpair {
    int x;          /* index of the delta row */
    jrow_t o;       /* the other side's row */
    ss_buf_t key;   /* memo key */
    int yes;
} jpair_t;

static int pair_prompt(ss_op_t *op, const ss_buf_t *l, const ss_buf_t *r, ss_buf_t *out, size_t *pre)
{
    ss_row_t *a = NULL, *b = NULL;
    int rc = ss_row_decode(l->data, l->len, &a);
    if (!rc)
        rc = ss_row_decode(r->data, r->len, &b);
    if (!rc)
        rc = ss_sem_prompt(out, SS_SEM_JOIN_TASK, op->node->tmpl, a, b, " (yes or no)", pre);
    ss_row_free(a);
    ss_row_free(b);
    return rc;
}

/* Decides every pair: memo first, the missing ones in one dispatcher call. */
static int decide(ss_op_t *op, ss_op_ctx_t *ctx, int side, jrow_t *xs, jpair_t *ps, int np, char *err, size_t errsz)
{
    sem_join_t *J = op->impl;
    ss_sem_kv_t kv;
    int rc = ss_sem_kv_open(&kv, ctx->db, op->node->id, "pair", err, errsz);
    if (rc)
        return rc;
    int *miss = calloc((size_t)(np ? np : 1), sizeof *miss);
    ss_buf_t *prompts = calloc((size_t)(np ? np : 1), sizeof *prompts);
    ss_infer_req_t *reqs = calloc((size_t)(np ? np : 1), sizeof *reqs);
    ss_infer_res_t *res = calloc((size_t)(np ? np : 1), sizeof *res);
    const ss_buf_t **keys = calloc((size_t)(np ? np : 1), sizeof *keys);
    ss_sem_set_t seen = {0};
    int m = 0;
    if (!miss || !prompts || !reqs || !res || !keys || ss_sem_set_init(&seen, (size_t)np))
        rc = SS_ERR_NOMEM;
    ss_buf_t v = SS_BUF_INIT;
    for (int i = 0; i < np && !rc; i++) {
        jpair_t *p = &ps[i];
        const ss_buf_t *lk = side == 0 ? &xs[p->x].k : &p->o.k, *rk = side == 0 ? &p->o.k : &xs[p->x].k;
        rc = ss_sem_join_pair_key(lk, rk, &p->key);
        int found = 0;
        ss_buf_reset(&v);
        if (!rc)
            rc = ss_sem_kv_get(&kv, p->key.data, p->key.len, &v, &found, err, errsz);
        if (!rc && found) {
            p->yes = v.len && v.data[0] == '1';
            continue;
        }
        p->yes = -1;
        keys[m] = &p->key;
        if (rc || ss_sem_set_add(&seen, keys, &p->key, m) >= 0)
            continue;
        size_t pre = 0;
        const ss_buf_t *l = side == 0 ? &xs[p->x].r : &p->o.r, *r = side == 0 ? &p->o.r : &xs[p->x].r;
        rc = pair_prompt(op, l, r, &prompts[m], &pre);
        ss_sem_req_choose(&reqs[m], NULL, pre, ss_sem_yesno);
        miss[m++] = i;
    }
    for (int i = 0; i < m; i++)
        reqs[i].prompt = ss_buf_cstr(&prompts[i]);
    if (!rc)
        rc = ss_sem_run(op, ctx, reqs, m, res, err, errsz);
    ss_sem_pairs_t pp = {0};
    if (!rc && m && J->memo_prune)
        rc = ss_sem_pairs_open(&pp, ctx->db, op->node->id, "pair", err, errsz);
    for (int i = 0; i < m && !rc; i++) {
        const ss_buf_t *k = &ps[miss[i]].key;
        rc = ss_sem_kv_put(&kv, k->data, k->len, ss_sem_yes(&res[i], J->yes_prob) ? "1" : "0", 1, err, errsz);
        if (!rc && J->memo_prune)
            rc = ss_sem_pairs_note(&pp, k->data, k->len, err, errsz);
    }
    ss_sem_pairs_close(&pp);
    for (int i = 0; i < np && !rc; i++) /* pairs that shared a missing key */
        if (ps[i].yes < 0) {
            int found = 0;
            ss_buf_reset(&v);
            rc = ss_sem_kv_get(&kv, ps[i].key.data, ps[i].key.len, &v, &found, err, errsz);
            ps[i].yes = found && v.len && v.data[0] == '1';
        }
    for (int i = 0; i < m; i++)
        ss_buf_free(&prompts[i]);
    ss_buf_free(&v);
    free(prompts);
    free(reqs);
    free(miss);
    free(keys);
    ss_sem_set_free(&seen);
    ss_sem_res_free(res, res ? m : 0);
    ss_sem_kv_close(&kv);
    return rc;
}

/* ------------------------------------------------------------------ candidates */

static int read_rows(sqlite3_stmt *st, jrow_t **out, int *n, int *cap)
{
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            jrow_t *v = realloc(*out, (size_t)*cap * sizeof *v);
            if (!v)
                return SS_ERR_NOMEM;
            *out = v;
        }
        jrow_t *j = &(*out)[*n];
        memset(j, 0, sizeof *j);
        int rc = ss_buf_append(&j->r, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        if (!rc)
            rc = ss_buf_append(&j->k, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
        j->w = sqlite3_column_int64(st, 2);
        (*n)++;
        if (rc)
            return rc;
    }
    return s == SQLITE_DONE ? SS_OK : SS_ERR_SQLITE;
}

/* Candidates of the other side for each new row: all its rows, or the nearest ones. */
static int candidates(ss_op_t *op, ss_op_ctx_t *ctx, int side, jrow_t *xs, float **embs, int nx, jpair_t **out,
                      int *nout, char *err, size_t errsz)
{
    sem_join_t *J = op->impl;
    int o = 1 - side, rc = SS_OK, np = 0, cap = 0;
    (void)xs;
    jpair_t *ps = NULL;
    sqlite3_stmt *st = NULL;
    jrow_t *all = NULL;
    int nall = 0, capall = 0;
    if (!J->prune) {
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT r, k, w FROM st_%d_s%d WHERE w>0 ORDER BY r",
                            op->node->id, o);
        if (!rc && read_rows(st, &all, &nall, &capall))
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_join rows");
        sqlite3_finalize(st);
        st = NULL;
    } else {
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT r, k, w FROM st_%d_s%d WHERE vid=?1 AND w>0",
                            op->node->id, o);
    }
    int kk = J->cand > 0 ? J->cand : (int)ss_sem_vidx_count(&J->idx[o]);
    int64_t *ids = calloc((size_t)(kk ? kk : 1), sizeof *ids);
    float *sims = calloc((size_t)(kk ? kk : 1), sizeof *sims);
    if (!ids || !sims)
        rc = SS_ERR_NOMEM;
    for (int i = 0; i < nx && !rc; i++) {
        jrow_t *c = NULL;
        int nc = 0, capc = 0;
        if (J->prune) {
            int f = 0;
            if (embs[i])
                rc = ss_sem_vidx_search(&J->idx[o], embs[i], kk, ids, sims, &f, err, errsz);
            for (int j = 0; j < f && !rc; j++) {
                if (J->threshold > -2 && sims[j] < J->threshold)
                    continue;
                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, ids[j]);
                if (read_rows(st, &c, &nc, &capc))
                    rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_join candidate");
            }
        } else {
            c = all;
            nc = nall;
        }
        for (int j = 0; j < nc && !rc; j++) {
            if (np == cap) {
                cap = cap ? cap * 2 : 64;
                jpair_t *v = realloc(ps, (size_t)cap * sizeof *v);
                if (!v) {
                    rc = SS_ERR_NOMEM;
                    break;
                }
                ps = v;
            }
            memset(&ps[np], 0, sizeof ps[np]);
            ps[np].x = i;
            rc = ss_buf_append(&ps[np].o.r, c[j].r.data, c[j].r.len);
            if (!rc)
                rc = ss_buf_append(&ps[np].o.k, c[j].k.data, c[j].k.len);
            ps[np].o.w = c[j].w;
            np++;
        }
        if (J->prune) {
            for (int j = 0; j < nc; j++)
                jrow_free(&c[j]);
            free(c);
        }
    }
    for (int j = 0; j < nall; j++)
        jrow_free(&all[j]);
    free(all);
    free(ids);
    free(sims);
    sqlite3_finalize(st);
    *out = ps;
    *nout = np;
    return rc;
}

/* ------------------------------------------------------------------ apply */

int ss_sem_join_emit(const ss_buf_t *l, const ss_buf_t *r, int64_t w, ss_zset_t *out)
{
    ss_row_t *a = NULL, *b = NULL;
    int rc = ss_row_decode(l->data, l->len, &a);
    if (!rc)
        rc = ss_row_decode(r->data, r->len, &b);
    ss_row_t *o = rc ? NULL : ss_row_new(a->n + b->n);
    if (!rc && !o)
        rc = SS_ERR_NOMEM;
    for (int i = 0; !rc && i < a->n; i++)
        rc = ss_row_set(o, i, &a->v[i]);
    for (int i = 0; !rc && i < b->n; i++)
        rc = ss_row_set(o, a->n + i, &b->v[i]);
    ss_row_free(a);
    ss_row_free(b);
    if (rc) {
        ss_row_free(o);
        return rc;
    }
    return ss_zset_add(out, o, w);
}

/* Emits dw x (weight of partner) for every matched pair of row x on `side`. */
static int replay_matches(ss_op_t *op, ss_op_ctx_t *ctx, int side, const ss_buf_t *x, int64_t dw,
                          ss_zset_t *out, char *err, size_t errsz)
{
    int id = op->node->id, o = 1 - side;
    const char *me = side == 0 ? "l" : "r", *other = side == 0 ? "r" : "l";
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT t.r, t.w FROM st_%d_out m JOIN st_%d_s%d t ON t.r = m.%s WHERE m.%s=?1",
                            id, id, o, other, me);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, x->data, (int)x->len, SQLITE_STATIC);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        ss_buf_t p = SS_BUF_INIT;
        rc = ss_buf_append(&p, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        int64_t w = sqlite3_column_int64(st, 1);
        if (!rc && w > 0)
            rc = side == 0 ? ss_sem_join_emit(x, &p, dw * w, out) : ss_sem_join_emit(&p, x, dw * w, out);
        ss_buf_free(&p);
    }
    sqlite3_finalize(st);
    return rc;
}

static int drop_matches(ss_op_t *op, ss_op_ctx_t *ctx, int side, const ss_buf_t *x, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "DELETE FROM st_%d_out WHERE %s=?1", op->node->id,
                            side == 0 ? "l" : "r");
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, x->data, (int)x->len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_join out");
    sqlite3_finalize(st);
    return rc;
}

/* Integrates one entry of side `side`. *isnew = 1 when the row appeared (w 0 -> >0). */
static int integrate_row(ss_op_t *op, ss_op_ctx_t *ctx, int side, const ss_row_t *row, int64_t dw, jrow_t *j,
                         int *isnew, int *gone, ss_zset_t *out, char *err, size_t errsz)
{
    sem_join_t *J = op->impl;
    int id = op->node->id;
    *isnew = *gone = 0;
    memset(j, 0, sizeof *j);
    int rc = ss_row_encode(row, &j->r);
    if (!rc)
        rc = ss_sem_proj(row, J->cols[side], J->ncols[side], &j->k);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT w, vid FROM st_%d_s%d WHERE r=?1", id, side);
    int64_t w = 0, vid = -1;
    if (!rc) {
        sqlite3_bind_blob(st, 1, j->r.data, (int)j->r.len, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            w = sqlite3_column_int64(st, 0);
            vid = sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    int64_t nw = w + dw;
    j->w = nw;
    if (rc)
        return rc;
    if (w > 0 && nw > 0)
        rc = replay_matches(op, ctx, side, &j->r, dw, out, err, errsz);
    else if (w > 0) {
        *gone = 1;
        rc = replay_matches(op, ctx, side, &j->r, -w, out, err, errsz);
        if (!rc)
            rc = drop_matches(op, ctx, side, &j->r, err, errsz);
        if (!rc && J->prune && vid >= 0)
            rc = ss_sem_vidx_remove(&J->idx[side], vid, err, errsz);
    } else if (nw > 0)
        *isnew = 1;
    if (!rc && nw == 0)
        rc = ss_sem_exec(ctx->db, err, errsz, "DELETE FROM st_%d_s%d WHERE vid=%lld", id, side, (long long)vid);
    else if (!rc) {
        rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "INSERT INTO st_%d_s%d(r,w,k) VALUES(?1,?2,?3) ON CONFLICT(r) DO UPDATE SET w=w+excluded.w",
                            id, side);
        if (!rc) {
            sqlite3_bind_blob(st, 1, j->r.data, (int)j->r.len, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, dw);
            sqlite3_bind_blob(st, 3, j->k.data, (int)j->k.len, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_join rows");
        }
        sqlite3_finalize(st);
    }
    return rc;
}

/* Embeds the new rows (their side's fields) and adds them to their side's index. */
static int index_new(ss_op_t *op, ss_op_ctx_t *ctx, int side, jrow_t *xs, int nx, float ***embs, char *err,
                     size_t errsz)
{
    sem_join_t *J = op->impl;
    *embs = NULL;
    if (!J->prune || nx == 0)
        return SS_OK;
    char **texts = calloc((size_t)nx, sizeof *texts);
    int rc = texts ? SS_OK : SS_ERR_NOMEM;
    for (int i = 0; i < nx && !rc; i++) {
        ss_row_t *r = NULL;
        ss_buf_t b = SS_BUF_INIT;
        rc = ss_row_decode(xs[i].r.data, xs[i].r.len, &r);
        if (!rc)
            rc = ss_sem_fields(&b, op->node->tmpl, side, r, NULL);
        ss_row_free(r);
        texts[i] = ss_buf_take(&b);
    }
    int dim = 0;
    if (!rc)
        rc = ss_sem_embed(op, ctx, (const char *const *)texts, nx, embs, &dim, err, errsz);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "UPDATE st_%d_s%d SET e=?2 WHERE r=?1 RETURNING vid",
                            op->node->id, side);
    for (int i = 0; i < nx && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, xs[i].r.data, (int)xs[i].r.len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, (*embs)[i], (int)(sizeof(float) * (size_t)dim), SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) {
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_join embedding");
            break;
        }
        int64_t vid = sqlite3_column_int64(st, 0);
        while (sqlite3_step(st) == SQLITE_ROW) {
        }
        rc = ss_sem_vidx_add(&J->idx[side], vid, (*embs)[i], dim, err, errsz);
    }
    sqlite3_finalize(st);
    for (int i = 0; texts && i < nx; i++)
        free(texts[i]);
    free(texts);
    return rc;
}

/* memo='prune': drops the pair decisions of the projections of `side` removed in this batch
 * that no live row of that side has any more (the dispatcher's result cache keeps them). */
static int prune_pairs(ss_op_t *op, ss_op_ctx_t *ctx, int side, const ss_buf_t *gone, int n, char *err,
                       size_t errsz)
{
    if (!n)
        return SS_OK;
    sqlite3_stmt *live = NULL;
    ss_sem_pairs_t pp = {0};
    int rc = ss_sem_prepare(ctx->db, &live, err, errsz, "SELECT 1 FROM st_%d_s%d WHERE k=?1 AND w>0 LIMIT 1",
                            op->node->id, side);
    if (!rc)
        rc = ss_sem_pairs_open(&pp, ctx->db, op->node->id, "pair", err, errsz);
    for (int i = 0; i < n && !rc; i++) {
        sqlite3_reset(live);
        sqlite3_bind_blob(live, 1, gone[i].data ? gone[i].data : "", (int)gone[i].len, SQLITE_STATIC);
        int s = sqlite3_step(live);
        sqlite3_reset(live);
        if (s == SQLITE_DONE)
            rc = ss_sem_pairs_drop(&pp, side, gone[i].data, gone[i].len, NULL, err, errsz);
        else if (s != SQLITE_ROW)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_join prune");
    }
    ss_sem_pairs_close(&pp);
    sqlite3_finalize(live);
    return rc;
}

static int join_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                      size_t errsz)
{
    int side = port ? 1 : 0, id = op->node->id;
    if (!in->n)
        return SS_OK;
    op->stats.batches++;
    op->stats.rows_in += (int64_t)in->n;
    if (((sem_join_t *)op->impl)->cascade)
        return ss_sem_join_cascade_apply(op, ctx, &((sem_join_t *)op->impl)->jc, side, in, out, err, errsz);
    int rc = load_index(op, ctx, err, errsz);
    jrow_t *xs = calloc(in->n, sizeof *xs);
    ss_buf_t *gone = calloc(in->n, sizeof *gone); /* projections of rows that disappeared */
    int nx = 0, ngone = 0;
    if (!xs || !gone)
        rc = SS_ERR_NOMEM;
    for (size_t i = 0; i < in->n && !rc; i++) {
        int isnew = 0, g = 0;
        rc = integrate_row(op, ctx, side, in->e[i].row, in->e[i].w, &xs[nx], &isnew, &g, out, err, errsz);
        if (g) {
            gone[ngone++] = xs[nx].k;
            memset(&xs[nx].k, 0, sizeof xs[nx].k);
        }
        if (isnew)
            nx++;
        else
            jrow_free(&xs[nx]);
    }
    float **embs = NULL;
    jpair_t *ps = NULL;
    int np = 0;
    if (!rc)
        rc = index_new(op, ctx, side, xs, nx, &embs, err, errsz);
    if (!rc)
        rc = candidates(op, ctx, side, xs, embs, nx, &ps, &np, err, errsz);
    if (!rc)
        rc = decide(op, ctx, side, xs, ps, np, err, errsz);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "INSERT OR IGNORE INTO st_%d_out(l, r) VALUES(?1, ?2)", id);
    for (int i = 0; i < np && !rc; i++) {
        if (!ps[i].yes)
            continue;
        const ss_buf_t *l = side == 0 ? &xs[ps[i].x].r : &ps[i].o.r, *r = side == 0 ? &ps[i].o.r : &xs[ps[i].x].r;
        rc = ss_sem_join_emit(l, r, xs[ps[i].x].w * ps[i].o.w, out);
        op->stats.rows_out++;
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, l->data, (int)l->len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, r->data, (int)r->len, SQLITE_STATIC);
        if (!rc && sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_join out");
    }
    sqlite3_finalize(st);
    for (int i = 0; i < np; i++) {
        jrow_free(&ps[i].o);
        ss_buf_free(&ps[i].key);
    }
    free(ps);
    for (int i = 0; i < nx; i++) {
        jrow_free(&xs[i]);
        if (embs)
            free(embs[i]);
    }
    free(embs);
    free(xs);
    if (!rc && ((sem_join_t *)op->impl)->memo_prune)
        rc = prune_pairs(op, ctx, side, gone, ngone, err, errsz);
    for (int i = 0; i < ngone; i++)
        ss_buf_free(&gone[i]);
    free(gone);
    return rc;
}

/* ------------------------------------------------------------------ vtable */

static int join_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    int id = op->node->id, rc = SS_OK;
    for (int s = 0; s < 2 && !rc; s++)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_s%d(vid INTEGER PRIMARY KEY, r BLOB UNIQUE, w INTEGER, "
                         "k BLOB, e BLOB);"
                         "CREATE INDEX IF NOT EXISTS st_%d_s%d_k ON st_%d_s%d(k)", id, s, id, s, id, s);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_out(l BLOB, r BLOB, PRIMARY KEY(l, r)) WITHOUT ROWID;"
                         "CREATE INDEX IF NOT EXISTS st_%d_out_r ON st_%d_out(r)", id, id, id);
    if (!rc)
        rc = ss_sem_kv_create(ctx->db, id, "pair", err, errsz);
    if (!rc && ((sem_join_t *)op->impl)->cascade)
        rc = ss_cascade_create(ctx->db, id, err, errsz);
    return rc;
}

static int join_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    int id = op->node->id;
    if (((sem_join_t *)op->impl)->cascade)
        return ss_sem_join_cascade_snapshot(op, ctx, &((sem_join_t *)op->impl)->jc, out, err, errsz);
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT a.r, b.r, a.w * b.w FROM st_%d_out m JOIN st_%d_s0 a ON a.r = m.l "
                            "JOIN st_%d_s1 b ON b.r = m.r WHERE a.w > 0 AND b.w > 0", id, id, id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        ss_buf_t l = SS_BUF_INIT, r = SS_BUF_INIT;
        rc = ss_buf_append(&l, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        if (!rc)
            rc = ss_buf_append(&r, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
        if (!rc)
            rc = ss_sem_join_emit(&l, &r, sqlite3_column_int64(st, 2), out);
        ss_buf_free(&l);
        ss_buf_free(&r);
    }
    sqlite3_finalize(st);
    return rc;
}

static const char *join_strategy(const ss_op_t *op)
{
    const sem_join_t *J = op->impl;
    if (J->cascade)
        return "bilinear cascade: a cheap proxy scores every pair of distinct projections (memoised); the "
               "model (the oracle) answers only for the calibration sample and the pairs between two learnt "
               "thresholds; a threshold change re-decides only the pairs between the old and new threshold; "
               "deletes free";
    return J->prune ? "bilinear; a new row is compared with its nearest candidates of the other side "
                      "(embedding index); pair decisions memoised; deletes cost no call"
                    : "bilinear; a new row is compared with every row of the other side; pair decisions "
                      "memoised; deletes cost no call";
}

static void join_destroy(ss_op_t *op)
{
    sem_join_t *J = op->impl;
    if (J) {
        ss_sem_vidx_free(&J->idx[0]);
        ss_sem_vidx_free(&J->idx[1]);
    }
    free(J);
    op->impl = NULL;
}

/* The batch was rolled back: the indexes may hold its embeddings; reload on next use. */
static void join_rollback(ss_op_t *op)
{
    sem_join_t *J = op->impl;
    for (int s = 0; s < 2; s++) {
        ss_sem_vidx_free(&J->idx[s]);
        ss_sem_vidx_init(&J->idx[s]);
    }
    J->loaded = 0;
}

static const ss_op_vtable_t sem_join_vt = {
    .name = "sem_join",
    .kind = SS_OPK_BILINEAR,
    .init = join_init,
    .apply = join_apply,
    .snapshot = join_snapshot,
    .strategy = join_strategy,
    .rollback = join_rollback,
    .destroy = join_destroy,
};

int ss_op_sem_join_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (!N->tmpl || N->nin < 2)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_join (node %d): needs a template and two inputs", N->id);
    int rc = ss_sem_memo_check(N, err, errsz);
    if (rc)
        return rc;
    sem_join_t *J = calloc(1, sizeof *J);
    if (!J)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int s = 0; s < 2; s++)
        J->ncols[s] = ss_sem_tmpl_cols(N, s, J->cols[s]);
    int64_t k = ss_plan_opt_int(N, "join_candidates", 0);
    J->cand = k < 0 ? 0 : k > 1000000 ? 1000000 : (int)k;
    J->threshold = ss_plan_opt_real(N, "threshold", -3);
    J->memo_prune = ss_sem_memo_prune(N);
    J->prune = J->cand > 0 || J->threshold > -2;
    J->yes_prob = ss_sem_yes_prob(N);
    const char *cas = ss_plan_opt(N, "cascade");
    if (cas) {
        char why[SS_ERRSZ];
        if (ss_plan_cascade_parse(cas, &J->jc.co, why, sizeof why)) {
            free(J);
            return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_join (node %d): %s", N->id, why);
        }
        J->cascade = 1;
        memcpy(J->jc.cols, J->cols, sizeof J->cols);
        memcpy(J->jc.ncols, J->ncols, sizeof J->ncols);
        J->jc.yes_prob = J->yes_prob;
    }
    ss_sem_vidx_init(&J->idx[0]);
    ss_sem_vidx_init(&J->idx[1]);
    op->impl = J;
    op->vt = &sem_join_vt;
    return SS_OK;
}
