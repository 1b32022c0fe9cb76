/*
 * sem_search.c — SEM_SEARCH(view, 'query', k): the k rows of the input nearest to the
 * query by embedding (the row's text: the columns of option text => '{a} {b}', else all
 * of them), each with its similarity as column "score"; embeddings only, no model call.
 * Non-linear: the view is the k best distinct rows (each emitted with its weight), and
 * its changes are emitted as differences against what was emitted before.
 *
 * The query is fixed, so a row's score never changes: it is computed once, when the
 * row arrives (1 embedding), and kept in st_<id>_rows(r, w, s) under an index on
 * (s DESC, r); the top k is read from that index after each batch. A delete is free:
 * a deleted top row is replaced by the next score in the index. Scores are exact
 * (ss_sem_cos) and ties go to the smaller row encoding, so the view equals a run from
 * scratch. Option threshold keeps only rows scoring at least that.
 *
 * State: st_<id>_rows (every live row and its score), st_<id>_out (the emitted top).
 * In memory: the query's embedding (a function of the query alone).
 */
#include "ss_sem.h"

#include <stdlib.h>
#include <string.h>

typedef struct sem_search {
    int k;
    double threshold;  /* <= -2: none */
    float *q;          /* the query's embedding, once computed */
    int dim;
} sem_search_t;

static int search_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    int id = op->node->id;
    return ss_sem_exec(ctx->db, err, errsz,
                       "CREATE TABLE IF NOT EXISTS st_%d_rows(r BLOB PRIMARY KEY, w INTEGER, s REAL) WITHOUT ROWID;"
                       "CREATE INDEX IF NOT EXISTS st_%d_rows_s ON st_%d_rows(s DESC, r);"
                       "CREATE TABLE IF NOT EXISTS st_%d_out(r BLOB PRIMARY KEY, w INTEGER, s REAL) WITHOUT ROWID",
                       id, id, id, id);
}

static int query_vec(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    sem_search_t *S = op->impl;
    if (S->q)
        return SS_OK;
    const char *q = ss_plan_opt(op->node, "query");
    const char *texts[1] = {q ? q : ""};
    float **v = NULL;
    int rc = ss_sem_embed(op, ctx, texts, 1, &v, &S->dim, err, errsz);
    if (!rc) {
        S->q = v[0];
        free(v);
    }
    return rc;
}

/* Integrates in: new rows are embedded (one call for the batch) and scored. */
static int integrate(ss_op_t *op, ss_op_ctx_t *ctx, const ss_zset_t *in, char *err, size_t errsz)
{
    sem_search_t *S = op->impl;
    int id = op->node->id;
    sqlite3_stmt *get = NULL, *put = NULL, *del = NULL, *up = NULL;
    int rc = ss_sem_prepare(ctx->db, &get, err, errsz, "SELECT w FROM st_%d_rows WHERE r=?1", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &up, err, errsz, "UPDATE st_%d_rows SET w=?2 WHERE r=?1", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &put, err, errsz,
                            "INSERT INTO st_%d_rows(r,w,s) VALUES(?1,?2,?3) ON CONFLICT(r) DO UPDATE SET w=excluded.w", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &del, err, errsz, "DELETE FROM st_%d_rows WHERE r=?1", id);
    ss_buf_t *enc = calloc(in->n ? in->n : 1, sizeof *enc);
    char **texts = calloc(in->n ? in->n : 1, sizeof *texts);
    int64_t *nw = calloc(in->n ? in->n : 1, sizeof *nw);
    int nnew = 0;
    if (!enc || !texts || !nw)
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    ss_buf_t r = SS_BUF_INIT;
    for (size_t i = 0; i < in->n && !rc; i++) {
        ss_buf_reset(&r);
        rc = ss_row_encode(in->e[i].row, &r);
        sqlite3_reset(get);
        sqlite3_bind_blob(get, 1, r.data, (int)r.len, SQLITE_STATIC);
        int64_t w = !rc && sqlite3_step(get) == SQLITE_ROW ? sqlite3_column_int64(get, 0) : 0;
        sqlite3_reset(get);
        int64_t w2 = w + in->e[i].w;
        if (rc)
            break;
        if (w2 <= 0) {
            sqlite3_reset(del);
            sqlite3_bind_blob(del, 1, r.data, (int)r.len, SQLITE_STATIC);
            if (sqlite3_step(del) != SQLITE_DONE)
                rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_search rows");
        } else if (w > 0) { /* a weight change keeps the score */
            sqlite3_reset(up);
            sqlite3_bind_blob(up, 1, r.data, (int)r.len, SQLITE_STATIC);
            sqlite3_bind_int64(up, 2, w2);
            if (sqlite3_step(up) != SQLITE_DONE)
                rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_search rows");
        } else { /* a new row: scored below, after one embedding call for all of them */
            ss_buf_t t = SS_BUF_INIT;
            rc = ss_sem_vec_text(op->node->tmpl, 0, in->e[i].row, &t);
            texts[nnew] = ss_buf_take(&t);
            rc = rc ? rc : ss_buf_append(&enc[nnew], r.data, r.len);
            nw[nnew++] = w2;
        }
    }
    float **vecs = NULL;
    int dim = 0;
    if (!rc && nnew)
        rc = ss_sem_embed(op, ctx, (const char *const *)texts, nnew, &vecs, &dim, err, errsz);
    if (!rc && nnew && dim != S->dim)
        rc = ss_seterr(err, errsz, SS_ERR_MODEL, "sem_search (node %d): embeddings of %d and %d dimensions",
                       op->node->id, dim, S->dim);
    for (int i = 0; i < nnew && !rc; i++) {
        sqlite3_reset(put);
        sqlite3_bind_blob(put, 1, enc[i].data, (int)enc[i].len, SQLITE_STATIC);
        sqlite3_bind_int64(put, 2, nw[i]);
        sqlite3_bind_double(put, 3, ss_sem_cos(S->q, vecs[i], dim));
        if (sqlite3_step(put) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_search rows");
    }
    for (int i = 0; i < nnew; i++) {
        free(texts[i]);
        ss_buf_free(&enc[i]);
        if (vecs)
            free(vecs[i]);
    }
    free(vecs);
    free(texts);
    free(enc);
    free(nw);
    ss_buf_free(&r);
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    sqlite3_finalize(del);
    sqlite3_finalize(up);
    return rc;
}

/* The row r ++ score s. */
static int emit_row(const void *r, size_t rn, double s, int64_t w, ss_zset_t *out)
{
    ss_row_t *row = NULL;
    int rc = ss_row_decode(r, rn, &row);
    ss_row_t *o = rc ? NULL : ss_row_new(row->n + 1);
    if (!rc && !o)
        rc = SS_ERR_NOMEM;
    for (int i = 0; !rc && i < row->n; i++)
        rc = ss_row_set(o, i, &row->v[i]);
    ss_value_t v = ss_val_real(s);
    if (!rc)
        rc = ss_row_set(o, row->n, &v);
    ss_row_free(row);
    if (rc) {
        ss_row_free(o);
        return rc;
    }
    return ss_zset_add(out, o, w);
}

/* Emits the new top k against st_<id>_out and stores it. */
static int emit_top(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    sem_search_t *S = op->impl;
    int id = op->node->id;
    int rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TEMP TABLE IF NOT EXISTS ss_search_new(r BLOB PRIMARY KEY, w INTEGER, s REAL);"
                         "DELETE FROM temp.ss_search_new;"
                         "INSERT INTO temp.ss_search_new SELECT r, w, s FROM st_%d_rows WHERE w>0 AND s>=%.17g "
                         "ORDER BY s DESC, r LIMIT %d",
                         id, S->threshold > -2 ? S->threshold : -1e300, S->k);
    sqlite3_stmt *st = NULL;
    /* retract what left the top or changed weight, then emit what entered or changed */
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT o.r, o.s, -o.w FROM st_%d_out o LEFT JOIN temp.ss_search_new n ON n.r=o.r "
                            "WHERE n.r IS NULL OR n.w<>o.w "
                            "UNION ALL SELECT n.r, n.s, n.w FROM temp.ss_search_new n LEFT JOIN st_%d_out o ON o.r=n.r "
                            "WHERE o.r IS NULL OR n.w<>o.w", id, id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        rc = emit_row(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), sqlite3_column_double(st, 1),
                      sqlite3_column_int64(st, 2), out);
        op->stats.rows_out++;
    }
    sqlite3_finalize(st);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "DELETE FROM st_%d_out; INSERT INTO st_%d_out SELECT r, w, s FROM temp.ss_search_new;"
                         "DELETE FROM temp.ss_search_new", id, id);
    return rc;
}

static int search_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                        size_t errsz)
{
    (void)port;
    if (!in->n)
        return SS_OK;
    op->stats.batches++;
    op->stats.rows_in += (int64_t)in->n;
    int rc = query_vec(op, ctx, err, errsz);
    if (!rc)
        rc = integrate(op, ctx, in, err, errsz);
    if (!rc)
        rc = emit_top(op, ctx, out, err, errsz);
    return rc;
}

static int search_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT r, s, w FROM st_%d_out", op->node->id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW)
        rc = emit_row(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), sqlite3_column_double(st, 1),
                      sqlite3_column_int64(st, 2), out);
    sqlite3_finalize(st);
    return rc;
}

static const char *search_strategy(const ss_op_t *op)
{
    (void)op;
    return "1 embedding per inserted row, scored once against the query; the k best read from an index on the "
           "scores; deletes free";
}

static void search_destroy(ss_op_t *op)
{
    sem_search_t *S = op->impl;
    if (S)
        free(S->q);
    free(S);
    op->impl = NULL;
}

static const ss_op_vtable_t sem_search_vt = {
    .name = "sem_search",
    .kind = SS_OPK_NONLINEAR,
    .init = search_init,
    .apply = search_apply,
    .snapshot = search_snapshot,
    .strategy = search_strategy,
    .destroy = search_destroy,
};

int ss_op_sem_search_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (N->nin < 1 || N->limit < 1 || !ss_plan_opt(N, "query"))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_search (node %d): needs an input, a query and k", N->id);
    sem_search_t *S = calloc(1, sizeof *S);
    if (!S)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    S->k = N->limit > 100000 ? 100000 : (int)N->limit;
    S->threshold = ss_plan_opt_real(N, "threshold", -3);
    op->impl = S;
    op->vt = &sem_search_vt;
    return SS_OK;
}
