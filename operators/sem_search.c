/*
 * sem_search.c — SEM_SEARCH(view, 'query', k): the k rows of the input nearest to the
 * query by embedding (the row's text: the columns of option text => '{a} {b}', else all
 * of them), each with its similarity as column "score"; embeddings only, no model call.
 * Non-linear: the view is the k best distinct rows (each emitted with its weight), and
 * its changes are emitted as differences against what was emitted before.
 *
 * The query is fixed, so a row's score never changes: it is computed once, when the
 * row arrives (1 embedding), and kept with the row; the top k is read from an index on
 * the scores after each batch. A delete is free: a deleted top row is replaced by the
 * next score in the index. Scores are exact (ss_sem_cos) and equal scores are ordered
 * by the row's hash, then its encoding, so the view equals a run from scratch. Option
 * threshold keeps only rows scoring at least that.
 *
 * State (rows stored once, never inside a key, as operators/state.c's row stores):
 * st_<id>_rows(id, h, s, n, row) — every live row with its count n, its hash h and
 * score s, found through indexes on h and on (s DESC, h); st_<id>_out(id, n, s, row)
 * — the emitted top (id = the row's id in st_<id>_rows, which SQLite reuses after a delete, so
 * a row of the top is the same row only when its encoding is the same too). In memory: the query's
 * embedding (a function of the query alone).
 */
#include "ss_sem.h"
#include "ss_state.h"

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
                       "CREATE TABLE IF NOT EXISTS st_%d_rows(id INTEGER PRIMARY KEY, h INTEGER NOT NULL, "
                       "s REAL NOT NULL, n INTEGER NOT NULL, row BLOB NOT NULL);"
                       "CREATE INDEX IF NOT EXISTS st_%d_rows_h ON st_%d_rows(h);"
                       "CREATE INDEX IF NOT EXISTS st_%d_rows_s ON st_%d_rows(s DESC, h);"
                       "CREATE TABLE IF NOT EXISTS st_%d_out(id INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
                       "s REAL NOT NULL, row BLOB NOT NULL)",
                       id, id, id, id, id, id);
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

/* The id and count of the row encoded in r (hash h): *rid = 0 when it is not stored. */
static int find_row(sqlite3 *db, sqlite3_stmt *get, const ss_buf_t *r, int64_t h, int64_t *rid, int64_t *n, char *err,
                    size_t errsz)
{
    sqlite3_reset(get);
    sqlite3_bind_int64(get, 1, h);
    *rid = 0;
    *n = 0;
    int sr;
    while ((sr = sqlite3_step(get)) == SQLITE_ROW) {
        if ((size_t)sqlite3_column_bytes(get, 2) == r->len &&
            (!r->len || !memcmp(sqlite3_column_blob(get, 2), r->data, r->len))) {
            *rid = sqlite3_column_int64(get, 0);
            *n = sqlite3_column_int64(get, 1);
            break;
        }
    }
    sqlite3_reset(get);
    return sr == SQLITE_ROW || sr == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(db, err, errsz, "sem_search rows");
}

/* Runs s (bound) to its end. */
static int step_done(sqlite3 *db, sqlite3_stmt *s, char *err, size_t errsz)
{
    int sr = sqlite3_step(s);
    sqlite3_reset(s);
    return sr == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(db, err, errsz, "sem_search rows");
}

/* Integrates in (consolidated first): a stored row's count changes (deleted at 0, free); rows
 * not stored yet are embedded (one call for the batch), scored and stored. */
static int integrate(ss_op_t *op, ss_op_ctx_t *ctx, const ss_zset_t *in, char *err, size_t errsz)
{
    sem_search_t *S = op->impl;
    int id = op->node->id;
    sqlite3 *db = ctx->db;
    sqlite3_stmt *get = NULL, *put = NULL, *del = NULL, *up = NULL;
    ss_zset_t z;
    ss_zset_init(&z);
    int rc = ss_state_zset_consolidated(in, &z) ? ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory") : SS_OK;
    if (!rc)
        rc = ss_sem_prepare(db, &get, err, errsz, "SELECT id, n, row FROM st_%d_rows WHERE h=?1", id);
    if (!rc)
        rc = ss_sem_prepare(db, &up, err, errsz, "UPDATE st_%d_rows SET n=?2 WHERE id=?1", id);
    if (!rc)
        rc = ss_sem_prepare(db, &put, err, errsz, "INSERT INTO st_%d_rows(h, s, n, row) VALUES(?1,?2,?3,?4)", id);
    if (!rc)
        rc = ss_sem_prepare(db, &del, err, errsz, "DELETE FROM st_%d_rows WHERE id=?1", id);
    size_t cap = z.n ? z.n : 1;
    ss_buf_t *enc = calloc(cap, sizeof *enc);
    char **texts = calloc(cap, sizeof *texts);
    int64_t *nw = calloc(cap, sizeof *nw);
    int nnew = 0;
    if (!rc && (!enc || !texts || !nw))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    ss_buf_t r = SS_BUF_INIT;
    for (size_t i = 0; i < z.n && !rc; i++) {
        ss_buf_reset(&r);
        if (ss_row_encode(z.e[i].row, &r)) {
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            break;
        }
        int64_t rid, n;
        rc = find_row(db, get, &r, ss_state_row_hash(r.data, r.len), &rid, &n, err, errsz);
        if (rc)
            break;
        int64_t w2 = n + z.e[i].w;
        if (rid && w2 == 0) {
            sqlite3_bind_int64(del, 1, rid);
            rc = step_done(db, del, err, errsz);
        } else if (rid) { /* a count change keeps the score */
            sqlite3_bind_int64(up, 1, rid);
            sqlite3_bind_int64(up, 2, w2);
            rc = step_done(db, up, err, errsz);
        } else { /* a new row: scored below, after one embedding call for all of them */
            ss_buf_t t = SS_BUF_INIT;
            rc = ss_sem_vec_text(op->node->tmpl, 0, z.e[i].row, &t);
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
        sqlite3_bind_int64(put, 1, ss_state_row_hash(enc[i].data, enc[i].len));
        sqlite3_bind_double(put, 2, ss_sem_cos(S->q, vecs[i], dim));
        sqlite3_bind_int64(put, 3, nw[i]);
        sqlite3_bind_blob(put, 4, enc[i].data ? enc[i].data : "", (int)enc[i].len, SQLITE_STATIC);
        rc = step_done(db, put, err, errsz);
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
    ss_zset_destroy(&z);
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

/* Emits the new top k against st_<id>_out and stores it. The top is the k best live rows by
 * (score desc, hash, encoding); a row in both with the same count is left alone. */
static int emit_top(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    sem_search_t *S = op->impl;
    int id = op->node->id;
    int rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TEMP TABLE IF NOT EXISTS ss_search_new(id INTEGER PRIMARY KEY, n INTEGER, s REAL);"
                         "DELETE FROM temp.ss_search_new;"
                         "INSERT INTO temp.ss_search_new SELECT id, n, s FROM st_%d_rows WHERE n>0 AND s>=%.17g "
                         "ORDER BY s DESC, h, row LIMIT %d",
                         id, S->threshold > -2 ? S->threshold : -1e300, S->k);
    sqlite3_stmt *st = NULL;
    /* retract what left the top or changed count, then emit what entered or changed. A row is
     * the same only with the same id AND the same encoding: a deleted row's id is reused by the
     * next row stored (SQLite's rowid), in the same batch too */
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT o.row, o.s, -o.n FROM st_%d_out o LEFT JOIN (temp.ss_search_new x "
                            "JOIN st_%d_rows r ON r.id=x.id) ON x.id=o.id AND r.row=o.row "
                            "WHERE x.id IS NULL OR x.n<>o.n "
                            "UNION ALL SELECT r.row, x.s, x.n FROM temp.ss_search_new x "
                            "JOIN st_%d_rows r ON r.id=x.id LEFT JOIN st_%d_out o ON o.id=x.id AND o.row=r.row "
                            "WHERE o.id IS NULL OR x.n<>o.n", id, id, id, id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        rc = emit_row(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), sqlite3_column_double(st, 1),
                      sqlite3_column_int64(st, 2), out);
        op->stats.rows_out++;
    }
    sqlite3_finalize(st);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "DELETE FROM st_%d_out WHERE id NOT IN (SELECT id FROM temp.ss_search_new);"
                         "INSERT INTO st_%d_out(id, n, s, row) SELECT x.id, x.n, x.s, r.row FROM temp.ss_search_new x "
                         "JOIN st_%d_rows r ON r.id=x.id WHERE true "
                         "ON CONFLICT(id) DO UPDATE SET n=excluded.n, s=excluded.s, row=excluded.row;"
                         "DELETE FROM temp.ss_search_new", id, id, id);
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
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT row, s, n FROM st_%d_out", op->node->id);
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
