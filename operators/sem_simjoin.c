/*
 * sem_simjoin.c — a SEM_SIM_JOIN b ON 'template' LIMIT k: every row of a with the k
 * rows of b nearest to it by embedding (each side embedded as its own template fields,
 * ss_sem_vec_text), and their similarity as column "similarity"; no model call besides
 * one embedding per new row. Distinct rows of b compete for the k places; a row of a
 * or b with weight w emits its pairs with the product of the weights.
 *
 * Maintenance (per batch on one port, then the pairs of every touched left row are
 * re-emitted as -old +new, which consolidates to the actual change):
 *   left insert   its k nearest from the right side's FAISS index (exact, ss_sem_vidx_topk)
 *   left delete   its pairs retracted (no call)
 *   right insert  added to the right index; every left row it now beats the k-th of (found
 *                 by searching the left index with it: candidates within float error of a
 *                 left row's k-th score are scored exactly) takes it in, dropping its k-th
 *   right delete  removed from the right index; each left row that listed it finds its k
 *                 nearest again (no call)
 *   weights       a weight change re-emits the row's pairs with the new product
 * Scores are exact and ties go to the smaller row encoding, so the view equals a run
 * from scratch over the same rows in any arrival order. Option threshold drops pairs
 * below that similarity.
 *
 * State (each row stored once, never inside a key, as operators/state.c's row stores):
 * st_<id>_s0 / st_<id>_s1 (vid, h = hash of the row's encoding, r = row, w = weight,
 * e = embedding), found by vid or through an index on h; st_<id>_nn (l, r, s): each left
 * row's current k nearest as (left vid, right vid, score). vids are never reused
 * (AUTOINCREMENT), so a vid names one row for its lifetime. In memory: a FAISS index per
 * side (ids = vids), rebuilt from st_<id>_s* on first use and after a rollback.
 */
#include "ss_sem.h"
#include "ss_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sem_simjoin {
    int k;
    double threshold;    /* <= -2: none */
    ss_sem_vidx_t idx[2];
    int loaded;
} sem_simjoin_t;

/* A row of one side changed by the batch. */
typedef struct chg {
    ss_buf_t r;
    int64_t w0, w1;      /* weight before and after */
    int64_t vid;
} chg_t;

/* A left row whose pairs are re-emitted. */
typedef struct touched {
    ss_buf_t l;
    int64_t vid, w0, w1;
    int recompute;       /* find its k nearest again (a listed right row went, or it is new) */
} touched_t;

typedef struct run {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
    char *err;
    size_t errsz;
    chg_t *rc;           /* right rows changed in this batch (their old weights) */
    int nrc;
    sqlite3_stmt *emb1;  /* SELECT e, r FROM s1 WHERE vid=? */
    const float *q;      /* the query of the exact scorer */
    int dim;
} run_t;

/* ------------------------------------------------------------------ state */

static int sj_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    int id = op->node->id, rc = SS_OK;
    for (int s = 0; s < 2 && !rc; s++)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_s%d(vid INTEGER PRIMARY KEY AUTOINCREMENT, h INTEGER NOT NULL, "
                         "r BLOB NOT NULL, w INTEGER NOT NULL, e BLOB);"
                         "CREATE INDEX IF NOT EXISTS st_%d_s%d_h ON st_%d_s%d(h)",
                         id, s, id, s, id, s);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_nn(l INTEGER, r INTEGER, s REAL, PRIMARY KEY(l, r)) WITHOUT ROWID;"
                         "CREATE INDEX IF NOT EXISTS st_%d_nn_r ON st_%d_nn(r)", id, id, id);
    return rc;
}

static int load(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    sem_simjoin_t *J = op->impl;
    if (J->loaded)
        return SS_OK;
    int rc = SS_OK;
    for (int s = 0; s < 2 && !rc; s++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT vid, e FROM st_%d_s%d WHERE w>0 AND e IS NOT NULL", op->node->id, s);
        rc = ss_sem_vidx_load(&J->idx[s], ctx->db, sql, err, errsz);
    }
    J->loaded = !rc;
    return rc;
}

static void sj_rollback(ss_op_t *op)
{
    sem_simjoin_t *J = op->impl;
    for (int s = 0; s < 2; s++) {
        ss_sem_vidx_free(&J->idx[s]);
        ss_sem_vidx_init(&J->idx[s]);
    }
    J->loaded = 0;
}

/* Integrates in on side s into st_<id>_s<s>; the rows whose weight changed go to *out (new
 * rows without a vid yet: -1), new rows are embedded (one call) and added to the index. */
static int integrate(run_t *R, int side, const ss_zset_t *in, chg_t **out, int *nout)
{
    ss_op_t *op = R->op;
    sem_simjoin_t *J = op->impl;
    int id = op->node->id;
    ss_zset_t z;
    ss_zset_init(&z);
    chg_t *c = calloc(in->n ? in->n : 1, sizeof *c);
    sqlite3_stmt *get = NULL, *put = NULL, *up = NULL, *del = NULL;
    int rc = c ? SS_OK : ss_seterr(R->err, R->errsz, SS_ERR_NOMEM, "out of memory"), n = 0;
    if (!rc && ss_state_zset_consolidated(in, &z)) /* each row once: one change record per row */
        rc = ss_seterr(R->err, R->errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &get, R->err, R->errsz, "SELECT w, vid, r FROM st_%d_s%d WHERE h=?1", id, side);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &put, R->err, R->errsz,
                            "INSERT INTO st_%d_s%d(h,r,w) VALUES(?1,?2,?3) RETURNING vid", id, side);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &up, R->err, R->errsz, "UPDATE st_%d_s%d SET w=?2 WHERE vid=?1", id, side);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &del, R->err, R->errsz, "DELETE FROM st_%d_s%d WHERE vid=?1", id, side);
    for (size_t i = 0; i < z.n && !rc; i++) {
        chg_t *x = &c[n];
        rc = ss_row_encode(z.e[i].row, &x->r);
        int64_t h = ss_state_row_hash(x->r.data, x->r.len);
        sqlite3_reset(get);
        sqlite3_bind_int64(get, 1, h);
        x->vid = -1;
        while (!rc && sqlite3_step(get) == SQLITE_ROW)
            if ((size_t)sqlite3_column_bytes(get, 2) == x->r.len &&
                (!x->r.len || !memcmp(sqlite3_column_blob(get, 2), x->r.data, x->r.len))) {
                x->w0 = sqlite3_column_int64(get, 0);
                x->vid = sqlite3_column_int64(get, 1);
                break;
            }
        sqlite3_reset(get);
        x->w1 = x->w0 + z.e[i].w;
        if (rc || x->w1 == x->w0) {
            ss_buf_free(&x->r);
            continue;
        }
        if (x->w1 <= 0) {
            if (x->vid >= 0) {
                sqlite3_reset(del);
                sqlite3_bind_int64(del, 1, x->vid);
                if (sqlite3_step(del) != SQLITE_DONE)
                    rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_sim_join rows");
                if (!rc)
                    rc = ss_sem_vidx_remove(&J->idx[side], x->vid, R->err, R->errsz);
            }
            x->w1 = 0;
        } else if (x->vid >= 0) {
            sqlite3_reset(up);
            sqlite3_bind_int64(up, 1, x->vid);
            sqlite3_bind_int64(up, 2, x->w1);
            if (sqlite3_step(up) != SQLITE_DONE)
                rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_sim_join rows");
            sqlite3_reset(up);
        } else {
            sqlite3_reset(put);
            sqlite3_bind_int64(put, 1, h);
            sqlite3_bind_blob(put, 2, x->r.data ? x->r.data : "", (int)x->r.len, SQLITE_STATIC);
            sqlite3_bind_int64(put, 3, x->w1);
            if (sqlite3_step(put) != SQLITE_ROW)
                rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_sim_join rows");
            else
                x->vid = sqlite3_column_int64(put, 0);
            sqlite3_reset(put);
        }
        n++;
    }
    ss_zset_destroy(&z);
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    sqlite3_finalize(up);
    sqlite3_finalize(del);
    /* embed the rows that appeared, in one call, and index them */
    char **texts = calloc((size_t)(n ? n : 1), sizeof *texts);
    int *who = calloc((size_t)(n ? n : 1), sizeof *who), nt = 0;
    if (!rc && (!texts || !who))
        rc = ss_seterr(R->err, R->errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        if (c[i].w0 > 0 || c[i].w1 <= 0)
            continue;
        ss_row_t *row = NULL;
        ss_buf_t t = SS_BUF_INIT;
        rc = ss_row_decode(c[i].r.data, c[i].r.len, &row);
        if (!rc)
            rc = ss_sem_vec_text(op->node->tmpl, side, row, &t);
        ss_row_free(row);
        texts[nt] = ss_buf_take(&t);
        who[nt++] = i;
    }
    float **vecs = NULL;
    int dim = 0;
    if (!rc && nt)
        rc = ss_sem_embed(op, R->ctx, (const char *const *)texts, nt, &vecs, &dim, R->err, R->errsz);
    sqlite3_stmt *se = NULL;
    if (!rc && nt)
        rc = ss_sem_prepare(R->ctx->db, &se, R->err, R->errsz, "UPDATE st_%d_s%d SET e=?2 WHERE vid=?1", id, side);
    for (int i = 0; i < nt && !rc; i++) {
        sqlite3_reset(se);
        sqlite3_bind_int64(se, 1, c[who[i]].vid);
        sqlite3_bind_blob(se, 2, vecs[i], (int)(sizeof(float) * (size_t)dim), SQLITE_STATIC);
        if (sqlite3_step(se) != SQLITE_DONE)
            rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_sim_join embedding");
        if (!rc)
            rc = ss_sem_vidx_add(&J->idx[side], c[who[i]].vid, vecs[i], dim, R->err, R->errsz);
    }
    sqlite3_finalize(se);
    for (int i = 0; i < nt; i++) {
        free(texts[i]);
        if (vecs)
            free(vecs[i]);
    }
    free(vecs);
    free(texts);
    free(who);
    *out = c;
    *nout = n;
    return rc;
}

static void chgs_free(chg_t *c, int n)
{
    for (int i = 0; c && i < n; i++)
        ss_buf_free(&c[i].r);
    free(c);
}

/* ------------------------------------------------------------------ neighbours */

/* Exact score of right row `id` against R->q, tie = its row encoding. */
static int exact_right(void *ud, int64_t id, double *s, ss_buf_t *tie)
{
    run_t *R = ud;
    sqlite3_reset(R->emb1);
    sqlite3_bind_int64(R->emb1, 1, id);
    int rc = SS_OK;
    if (sqlite3_step(R->emb1) != SQLITE_ROW || sqlite3_column_bytes(R->emb1, 0) != (int)sizeof(float) * R->dim)
        rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "sem_sim_join (node %d): no embedding for right row %lld",
                       R->op->node->id, (long long)id);
    else {
        *s = ss_sem_cos(R->q, sqlite3_column_blob(R->emb1, 0), R->dim);
        rc = ss_buf_append(tie, sqlite3_column_blob(R->emb1, 1), (size_t)sqlite3_column_bytes(R->emb1, 1));
    }
    sqlite3_reset(R->emb1);
    return rc;
}

/* The change record of right row vid in this batch, or NULL. */
static const chg_t *right_chg(const run_t *R, int64_t vid)
{
    for (int i = 0; i < R->nrc; i++)
        if (R->rc[i].vid == vid)
            return &R->rc[i];
    return NULL;
}

/* The weight of right row vid now (0 when gone). */
static int64_t right_w(sqlite3_stmt *wnow, int64_t vid)
{
    sqlite3_reset(wnow);
    sqlite3_bind_int64(wnow, 1, vid);
    int64_t w = sqlite3_step(wnow) == SQLITE_ROW ? sqlite3_column_int64(wnow, 0) : 0;
    sqlite3_reset(wnow);
    return w;
}

/* l ++ r ++ similarity, weight w. */
static int emit_pair(const void *l, size_t ln, const void *r, size_t rn, double s, int64_t w, ss_zset_t *out)
{
    if (!w)
        return SS_OK;
    ss_row_t *a = NULL, *b = NULL;
    int rc = ss_row_decode(l, ln, &a);
    if (!rc)
        rc = ss_row_decode(r, rn, &b);
    ss_row_t *o = rc ? NULL : ss_row_new(a->n + b->n + 1);
    if (!rc && !o)
        rc = SS_ERR_NOMEM;
    for (int i = 0; !rc && i < a->n; i++)
        rc = ss_row_set(o, i, &a->v[i]);
    for (int i = 0; !rc && i < b->n; i++)
        rc = ss_row_set(o, a->n + i, &b->v[i]);
    ss_value_t v = ss_val_real(s);
    if (!rc)
        rc = ss_row_set(o, a->n + b->n, &v);
    ss_row_free(a);
    ss_row_free(b);
    if (rc) {
        ss_row_free(o);
        return rc;
    }
    return ss_zset_add(out, o, w);
}

/* Re-emits left row t: retracts its stored pairs with the weights before the batch, finds its new
 * list (the stored one, a fresh search, or the stored one merged with entering right rows), stores
 * and emits it with the weights after. */
static int redo_left(run_t *R, touched_t *t, ss_sem_hit_t *enter, int nenter, ss_zset_t *out)
{
    ss_op_t *op = R->op;
    sem_simjoin_t *J = op->impl;
    int id = op->node->id, rc = SS_OK;
    sqlite3_stmt *old = NULL, *wnow = NULL;
    /* the stored list; a right row deleted in this batch is no longer in s1: its change record has it */
    rc = ss_sem_prepare(R->ctx->db, &old, R->err, R->errsz,
                        "SELECT n.r, n.s, b.r, b.w FROM st_%d_nn n LEFT JOIN st_%d_s1 b ON b.vid = n.r WHERE n.l=?1",
                        id, id);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &wnow, R->err, R->errsz, "SELECT w FROM st_%d_s1 WHERE vid=?1 AND w>0", id);
    ss_sem_hit_t *list = NULL;
    int n = 0, cap = 0;
    if (!rc)
        sqlite3_bind_int64(old, 1, t->vid);
    while (!rc && sqlite3_step(old) == SQLITE_ROW) {
        int64_t rv = sqlite3_column_int64(old, 0);
        double s = sqlite3_column_double(old, 1);
        const chg_t *ch = right_chg(R, rv);
        const void *r = ch ? ch->r.data : sqlite3_column_blob(old, 2);
        size_t rn = ch ? ch->r.len : (size_t)sqlite3_column_bytes(old, 2);
        int64_t w0 = ch ? ch->w0 : sqlite3_column_int64(old, 3);
        if (!ch && sqlite3_column_type(old, 2) == SQLITE_NULL) {
            rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "sem_sim_join (node %d): a pair names right row %lld, "
                           "which is not stored", id, (long long)rv);
            break;
        }
        rc = emit_pair(t->l.data, t->l.len, r, rn, s, -t->w0 * w0, out);
        if (!rc && !t->recompute && t->w1 > 0) { /* kept unless its right row went */
            if (right_w(wnow, rv) > 0) {
                if (n == cap) {
                    cap = cap ? 2 * cap : 16;
                    ss_sem_hit_t *v = realloc(list, (size_t)cap * sizeof *v);
                    if (!v) {
                        rc = SS_ERR_NOMEM;
                        break;
                    }
                    list = v;
                }
                memset(&list[n], 0, sizeof list[n]);
                list[n].s = s;
                list[n].id = rv;
                rc = ss_buf_append(&list[n++].tie, r, rn);
            }
        }
    }
    sqlite3_finalize(old);
    if (!rc && t->w1 > 0 && t->recompute) { /* a fresh search over the right side */
        ss_sem_hits_free(list, n);
        list = NULL;
        n = 0;
        sqlite3_stmt *e = NULL;
        rc = ss_sem_prepare(R->ctx->db, &e, R->err, R->errsz, "SELECT e FROM st_%d_s0 WHERE vid=?1", id);
        if (!rc) {
            sqlite3_bind_int64(e, 1, t->vid);
            if (sqlite3_step(e) != SQLITE_ROW || sqlite3_column_bytes(e, 0) <= 0)
                rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "sem_sim_join (node %d): left row without embedding",
                               id);
        }
        if (!rc && J->idx[1].v) {
            R->dim = sqlite3_column_bytes(e, 0) / (int)sizeof(float);
            float *q = malloc((size_t)R->dim * sizeof *q);
            if (!q)
                rc = SS_ERR_NOMEM;
            else
                memcpy(q, sqlite3_column_blob(e, 0), (size_t)R->dim * sizeof *q);
            R->q = q;
            if (!rc)
                rc = ss_sem_vidx_topk(&J->idx[1], q, R->dim, J->k, exact_right, R, &list, &n, R->err, R->errsz);
            free(q);
            R->q = NULL;
        }
        sqlite3_finalize(e);
    }
    for (int i = 0; i < nenter && !rc && t->w1 > 0 && !t->recompute; i++) { /* entering right rows */
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            ss_sem_hit_t *v = realloc(list, (size_t)cap * sizeof *v);
            if (!v) {
                rc = SS_ERR_NOMEM;
                break;
            }
            list = v;
        }
        memset(&list[n], 0, sizeof list[n]);
        list[n].s = enter[i].s;
        list[n].id = enter[i].id;
        rc = ss_buf_append(&list[n++].tie, enter[i].tie.data, enter[i].tie.len);
    }
    ss_sem_hits_sort(list, n);
    int keep = SS_MIN(n, J->k);
    while (keep > 0 && J->threshold > -2 && list[keep - 1].s < J->threshold)
        keep--;
    sqlite3_stmt *del = NULL, *ins = NULL;
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &del, R->err, R->errsz, "DELETE FROM st_%d_nn WHERE l=?1", id);
    if (!rc) {
        sqlite3_bind_int64(del, 1, t->vid);
        if (sqlite3_step(del) != SQLITE_DONE)
            rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_sim_join pairs");
    }
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &ins, R->err, R->errsz, "INSERT INTO st_%d_nn(l, r, s) VALUES(?1,?2,?3)", id);
    for (int i = 0; i < keep && !rc && t->w1 > 0; i++) {
        sqlite3_reset(ins);
        sqlite3_bind_int64(ins, 1, t->vid);
        sqlite3_bind_int64(ins, 2, list[i].id);
        sqlite3_bind_double(ins, 3, list[i].s);
        if (sqlite3_step(ins) != SQLITE_DONE)
            rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_sim_join pairs");
        int64_t wr = right_w(wnow, list[i].id);
        if (!rc)
            rc = emit_pair(t->l.data, t->l.len, list[i].tie.data, list[i].tie.len, list[i].s, t->w1 * wr, out);
    }
    sqlite3_finalize(del);
    sqlite3_finalize(ins);
    sqlite3_finalize(wnow);
    ss_sem_hits_free(list, n);
    return rc;
}

/* ------------------------------------------------------------------ touched left rows */

typedef struct tset {
    touched_t *v;
    int n, cap;
} tset_t;

/* The touched record of left row vid, created on first use with its stored weight and row (l,
 * when given, is its row: one deleted in this batch is no longer stored). */
static touched_t *tset_get(tset_t *ts, int64_t vid, const void *l, size_t ln, sqlite3 *db, int id, int *rc)
{
    for (int i = 0; i < ts->n; i++)
        if (ts->v[i].vid == vid)
            return &ts->v[i];
    if (ts->n == ts->cap) {
        int cap = ts->cap ? 2 * ts->cap : 16;
        touched_t *v = realloc(ts->v, (size_t)cap * sizeof *v);
        if (!v) {
            *rc = SS_ERR_NOMEM;
            return NULL;
        }
        ts->v = v;
        ts->cap = cap;
    }
    touched_t *t = &ts->v[ts->n++];
    memset(t, 0, sizeof *t);
    t->vid = vid;
    sqlite3_stmt *st = NULL;
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT w, r FROM st_%d_s0 WHERE vid=?1", id);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        *rc = SS_ERR_SQLITE;
    } else {
        sqlite3_bind_int64(st, 1, vid);
        if (sqlite3_step(st) == SQLITE_ROW) {
            t->w0 = t->w1 = sqlite3_column_int64(st, 0);
            if (!l) {
                l = sqlite3_column_blob(st, 1);
                ln = (size_t)sqlite3_column_bytes(st, 1);
            }
        }
        *rc = l ? ss_buf_append(&t->l, l, ln) : SS_ERR_INTERNAL; /* no row: a pair names a missing left row */
    }
    sqlite3_finalize(st);
    return *rc ? NULL : t;
}

static void tset_free(tset_t *ts)
{
    for (int i = 0; i < ts->n; i++)
        ss_buf_free(&ts->v[i].l);
    free(ts->v);
}

/* Left rows a right change touches: those listing a changed right row (recomputed when it went). */
static int touched_by_right(run_t *R, tset_t *ts)
{
    int id = R->op->node->id, rc = SS_OK;
    sqlite3_stmt *st = NULL;
    rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz, "SELECT l FROM st_%d_nn WHERE r=?1", id);
    for (int i = 0; i < R->nrc && !rc; i++) {
        if (R->rc[i].w0 <= 0)
            continue; /* a new right row is in no list yet */
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, R->rc[i].vid);
        while (!rc && sqlite3_step(st) == SQLITE_ROW) {
            touched_t *t = tset_get(ts, sqlite3_column_int64(st, 0), NULL, 0, R->ctx->db, id, &rc);
            if (t && R->rc[i].w1 <= 0)
                t->recompute = 1;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Keeps the arrays parallel to ts->v (entering rows of each touched left row) as long as ts->cap. */
static int grow_enter(const tset_t *ts, ss_sem_hit_t ***enter, int **nenter, int *ecap)
{
    if (*ecap >= ts->cap && *enter)
        return SS_OK;
    int cap = ts->cap ? ts->cap : 1;
    ss_sem_hit_t **e = realloc(*enter, (size_t)cap * sizeof *e);
    if (e)
        *enter = e;
    int *n = e ? realloc(*nenter, (size_t)cap * sizeof *n) : NULL;
    if (!n)
        return SS_ERR_NOMEM;
    *nenter = n;
    for (int i = *ecap; i < cap; i++) {
        e[i] = NULL;
        n[i] = 0;
    }
    *ecap = cap;
    return SS_OK;
}

/* For the right rows that appeared: the left rows they enter the lists of. Each new right row is
 * scored against every left row through the left index (one exhaustive FAISS search per new row);
 * a left row takes it when it has fewer than k, or the row beats its k-th exactly. enter[i] lists
 * the entering right rows of ts->v[i]. */
static int entering(run_t *R, tset_t *ts, ss_sem_hit_t ***enter, int **nenter)
{
    ss_op_t *op = R->op;
    sem_simjoin_t *J = op->impl;
    int id = op->node->id, rc = SS_OK;
    int64_t nl = ss_sem_vidx_count(&J->idx[0]);
    *enter = NULL;
    *nenter = NULL;
    if (nl == 0)
        return SS_OK;
    sqlite3_stmt *re = NULL, *le = NULL, *worst = NULL;
    rc = ss_sem_prepare(R->ctx->db, &re, R->err, R->errsz, "SELECT e FROM st_%d_s1 WHERE vid=?1", id);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &le, R->err, R->errsz, "SELECT r, e FROM st_%d_s0 WHERE vid=?1 AND w>0", id);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &worst, R->err, R->errsz,
                            "SELECT count(*) OVER (), n.s, b.r FROM st_%d_nn n JOIN st_%d_s1 b ON b.vid = n.r "
                            "WHERE n.l=?1 ORDER BY n.s, b.r DESC LIMIT 1",
                            id, id);
    int64_t *ids = malloc((size_t)nl * sizeof *ids);
    float *sims = malloc((size_t)nl * sizeof *sims);
    int ecap = 0;
    if (!rc && (!ids || !sims))
        rc = SS_ERR_NOMEM;
    if (!rc)
        rc = grow_enter(ts, enter, nenter, &ecap);
    for (int i = 0; i < R->nrc && !rc; i++) {
        chg_t *c = &R->rc[i];
        if (c->w0 > 0 || c->w1 <= 0)
            continue;
        sqlite3_reset(re);
        sqlite3_bind_int64(re, 1, c->vid);
        if (sqlite3_step(re) != SQLITE_ROW)
            continue;
        int dim = sqlite3_column_bytes(re, 0) / (int)sizeof(float), found = 0;
        float *q = malloc((size_t)dim * sizeof *q);
        if (!q) {
            rc = SS_ERR_NOMEM;
            break;
        }
        memcpy(q, sqlite3_column_blob(re, 0), (size_t)dim * sizeof *q);
        sqlite3_reset(re);
        rc = ss_sem_vidx_search(&J->idx[0], q, (int)nl, ids, sims, &found, R->err, R->errsz);
        for (int j = 0; j < found && !rc; j++) {
            sqlite3_reset(le);
            sqlite3_bind_int64(le, 1, ids[j]);
            if (sqlite3_step(le) != SQLITE_ROW)
                continue;
            const void *l = sqlite3_column_blob(le, 0);
            size_t ln = (size_t)sqlite3_column_bytes(le, 0);
            sqlite3_reset(worst);
            sqlite3_bind_int64(worst, 1, ids[j]);
            int64_t cnt = 0;
            double ws = 0;
            ss_buf_t wr = SS_BUF_INIT;
            if (sqlite3_step(worst) == SQLITE_ROW) {
                cnt = sqlite3_column_int64(worst, 0);
                ws = sqlite3_column_double(worst, 1);
                rc = ss_buf_append(&wr, sqlite3_column_blob(worst, 2), (size_t)sqlite3_column_bytes(worst, 2));
            }
            sqlite3_reset(worst);
            /* a full list is only beaten within float error of its k-th (FAISS may round) */
            if (cnt >= J->k && (double)sims[j] < ws - 1e-4) {
                ss_buf_free(&wr);
                continue;
            }
            double s = ss_sem_cos(q, sqlite3_column_blob(le, 1), dim);
            int beats = cnt < J->k;
            if (!beats) {
                size_t m = SS_MIN(c->r.len, wr.len);
                int cmp = m ? memcmp(c->r.data, wr.data, m) : 0;
                cmp = cmp ? cmp : (c->r.len > wr.len) - (c->r.len < wr.len);
                beats = s > ws || (s == ws && cmp < 0);
            }
            ss_buf_free(&wr);
            if (!beats || rc)
                continue;
            touched_t *t = tset_get(ts, ids[j], l, ln, R->ctx->db, id, &rc);
            if (!t || (rc = grow_enter(ts, enter, nenter, &ecap)))
                break;
            int ti = (int)(t - ts->v);
            ss_sem_hit_t *e3 = realloc((*enter)[ti], (size_t)((*nenter)[ti] + 1) * sizeof *e3);
            if (!e3) {
                rc = SS_ERR_NOMEM;
                break;
            }
            (*enter)[ti] = e3;
            ss_sem_hit_t *h = &e3[(*nenter)[ti]++];
            memset(h, 0, sizeof *h);
            h->s = s;
            h->id = c->vid;
            rc = ss_buf_append(&h->tie, c->r.data, c->r.len);
        }
        free(q);
    }
    free(ids);
    free(sims);
    sqlite3_finalize(re);
    sqlite3_finalize(le);
    sqlite3_finalize(worst);
    return rc;
}

/* ------------------------------------------------------------------ apply */

static int sj_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                    size_t errsz)
{
    int side = port ? 1 : 0;
    if (!in->n)
        return SS_OK;
    op->stats.batches++;
    op->stats.rows_in += (int64_t)in->n;
    run_t R = {.op = op, .ctx = ctx, .err = err, .errsz = errsz};
    int rc = load(op, ctx, err, errsz);
    chg_t *c = NULL;
    int nc = 0;
    if (!rc)
        rc = integrate(&R, side, in, &c, &nc);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &R.emb1, err, errsz, "SELECT e, r FROM st_%d_s1 WHERE vid=?1 AND w>0",
                            op->node->id);
    tset_t ts = {0};
    ss_sem_hit_t **enter = NULL;
    int *nenter = NULL;
    if (!rc && side == 0) {
        for (int i = 0; i < nc && !rc; i++) {
            touched_t *t = tset_get(&ts, c[i].vid, c[i].r.data, c[i].r.len, ctx->db, op->node->id, &rc);
            if (t) {
                t->w0 = c[i].w0;
                t->w1 = c[i].w1;
                t->vid = c[i].vid;
                t->recompute = c[i].w0 <= 0;
            }
        }
    } else if (!rc) {
        R.rc = c;
        R.nrc = nc;
        rc = touched_by_right(&R, &ts);
        if (!rc)
            rc = entering(&R, &ts, &enter, &nenter);
    }
    for (int i = 0; i < ts.n && !rc; i++)
        rc = redo_left(&R, &ts.v[i], enter ? enter[i] : NULL, nenter ? nenter[i] : 0, out);
    for (int i = 0; enter && i < ts.n; i++)
        ss_sem_hits_free(enter[i], nenter[i]);
    free(enter);
    free(nenter);
    op->stats.rows_out += ts.n;
    tset_free(&ts);
    sqlite3_finalize(R.emb1);
    chgs_free(c, nc);
    return rc;
}

static int sj_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    int id = op->node->id;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT a.r, b.r, n.s, a.w * b.w FROM st_%d_nn n JOIN st_%d_s0 a ON a.vid = n.l "
                            "JOIN st_%d_s1 b ON b.vid = n.r WHERE a.w > 0 AND b.w > 0", id, id, id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW)
        rc = emit_pair(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), sqlite3_column_blob(st, 1),
                       (size_t)sqlite3_column_bytes(st, 1), sqlite3_column_double(st, 2), sqlite3_column_int64(st, 3),
                       out);
    sqlite3_finalize(st);
    return rc;
}

static const char *sj_strategy(const ss_op_t *op)
{
    (void)op;
    return "embeddings only: 1 embedding per new row; a new left row searches the right index for its k "
           "nearest, a new right row enters the lists it beats, a deleted right row's lists search again; no "
           "model call, deletes free";
}

static void sj_destroy(ss_op_t *op)
{
    sem_simjoin_t *J = op->impl;
    if (J) {
        ss_sem_vidx_free(&J->idx[0]);
        ss_sem_vidx_free(&J->idx[1]);
    }
    free(J);
    op->impl = NULL;
}

static const ss_op_vtable_t sem_simjoin_vt = {
    .name = "sem_sim_join",
    .kind = SS_OPK_BILINEAR,
    .init = sj_init,
    .apply = sj_apply,
    .snapshot = sj_snapshot,
    .strategy = sj_strategy,
    .rollback = sj_rollback,
    .destroy = sj_destroy,
};

int ss_op_sem_simjoin_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (!N->tmpl || N->nin < 2 || N->limit < 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_sim_join (node %d): needs a template, two inputs and k", N->id);
    sem_simjoin_t *J = calloc(1, sizeof *J);
    if (!J)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    J->k = N->limit > 100000 ? 100000 : (int)N->limit;
    J->threshold = ss_plan_opt_real(N, "threshold", -3);
    ss_sem_vidx_init(&J->idx[0]);
    ss_sem_vidx_init(&J->idx[1]);
    op->impl = J;
    op->vt = &sem_simjoin_vt;
    return SS_OK;
}
