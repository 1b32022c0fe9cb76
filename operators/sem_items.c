/*
 * sem_items.c — the distinct inputs ("items") of the operators that relate rows by
 * embedding and keep a label per row: SEM_DEDUP (sem_dedup.c) and SEM_GROUP /
 * SEM_CLUSTER (sem_group.c). An item is one distinct projection of a row on the
 * template's columns: rows that agree on them share one item, one embedding and one
 * label, so a row whose other columns change costs nothing.
 *
 * Owns two tables of node id N (written inside the batch's transaction):
 *   st_N_item(pid, h, p, n, t, e, g, lab)  one per live projection: pid (AUTOINCREMENT,
 *       never reused), h = hash of p, p = the projection's encoding, n = live weight of
 *       its rows, t = the text embedded (template fields), e = its embedding (floats),
 *       g / lab = what the operator keeps (dedup: component and its label; group: the
 *       prototype the item is assigned to, and a prototype's name).
 *   st_N_row(rid, h, r, w, pid)  every live row once with its weight and its item.
 * ss_sem_items_apply integrates a batch: rows and weights change in place, a projection
 * seen for the first time gets an item whose text is embedded (one embedding call for
 * all of the batch's new items); items whose weight reaches 0 stay until
 * ss_sem_items_gc, so the operator can still read their labels while emitting.
 */
#include "ss_sem.h"
#include "ss_state.h"

#include <stdlib.h>
#include <string.h>

int ss_sem_items_create(sqlite3 *db, int id, char *err, size_t errsz)
{
    return ss_sem_exec(db, err, errsz,
                       "CREATE TABLE IF NOT EXISTS st_%d_item(pid INTEGER PRIMARY KEY AUTOINCREMENT, h INTEGER NOT NULL, "
                       "p BLOB NOT NULL, n INTEGER NOT NULL, t TEXT, e BLOB, g INTEGER, lab TEXT);"
                       "CREATE INDEX IF NOT EXISTS st_%d_item_h ON st_%d_item(h);"
                       "CREATE INDEX IF NOT EXISTS st_%d_item_g ON st_%d_item(g);"
                       "CREATE TABLE IF NOT EXISTS st_%d_row(rid INTEGER PRIMARY KEY AUTOINCREMENT, h INTEGER NOT NULL, "
                       "r BLOB NOT NULL, w INTEGER NOT NULL, pid INTEGER NOT NULL);"
                       "CREATE INDEX IF NOT EXISTS st_%d_row_h ON st_%d_row(h);"
                       "CREATE INDEX IF NOT EXISTS st_%d_row_pid ON st_%d_row(pid)",
                       id, id, id, id, id, id, id, id, id, id);
}

void ss_sem_items_batch_free(ss_sem_items_batch_t *b)
{
    for (int i = 0; b->rows && i < b->nrows; i++)
        ss_buf_free(&b->rows[i].r);
    free(b->rows);
    free(b->items);
    memset(b, 0, sizeof *b);
}

typedef struct stmts {
    sqlite3_stmt *rget, *rput, *rup, *rdel, *iget, *iput, *inup;
} stmts_t;

static void stmts_free(stmts_t *s)
{
    sqlite3_finalize(s->rget);
    sqlite3_finalize(s->rput);
    sqlite3_finalize(s->rup);
    sqlite3_finalize(s->rdel);
    sqlite3_finalize(s->iget);
    sqlite3_finalize(s->iput);
    sqlite3_finalize(s->inup);
}

static int stmts_open(sqlite3 *db, int id, stmts_t *s, char *err, size_t errsz)
{
    int rc = ss_sem_prepare(db, &s->rget, err, errsz, "SELECT rid, w, pid, r FROM st_%d_row WHERE h=?1", id);
    if (!rc)
        rc = ss_sem_prepare(db, &s->rput, err, errsz,
                            "INSERT INTO st_%d_row(h, r, w, pid) VALUES(?1,?2,?3,?4) RETURNING rid", id);
    if (!rc)
        rc = ss_sem_prepare(db, &s->rup, err, errsz, "UPDATE st_%d_row SET w=?2 WHERE rid=?1", id);
    if (!rc)
        rc = ss_sem_prepare(db, &s->rdel, err, errsz, "DELETE FROM st_%d_row WHERE rid=?1", id);
    if (!rc)
        rc = ss_sem_prepare(db, &s->iget, err, errsz, "SELECT pid, n, p FROM st_%d_item WHERE h=?1", id);
    if (!rc)
        rc = ss_sem_prepare(db, &s->iput, err, errsz,
                            "INSERT INTO st_%d_item(h, p, n, t) VALUES(?1,?2,0,?3) RETURNING pid", id);
    if (!rc)
        rc = ss_sem_prepare(db, &s->inup, err, errsz, "UPDATE st_%d_item SET n=n+?2 WHERE pid=?1 RETURNING n", id);
    return rc;
}

/* Finds the stored blob equal to k among the rows of st (bound to a hash) whose column col holds
 * it; *found = 0 if none. Leaves st on the matching row (reset by the caller). */
static int find_blob(sqlite3_stmt *st, int col, const ss_buf_t *k, int *found)
{
    *found = 0;
    int sr;
    while ((sr = sqlite3_step(st)) == SQLITE_ROW)
        if ((size_t)sqlite3_column_bytes(st, col) == k->len &&
            (!k->len || !memcmp(sqlite3_column_blob(st, col), k->data, k->len))) {
            *found = 1;
            return SS_OK;
        }
    return sr == SQLITE_DONE ? SS_OK : SS_ERR_SQLITE;
}

static int step_done(sqlite3 *db, sqlite3_stmt *s, char *err, size_t errsz)
{
    int sr = sqlite3_step(s);
    sqlite3_reset(s);
    return sr == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(db, err, errsz, "semantic items");
}

/* The item change record of pid (added when absent). */
static ss_sem_item_chg_t *item_chg(ss_sem_items_batch_t *b, int64_t pid, size_t cap)
{
    for (int i = 0; i < b->nitems; i++)
        if (b->items[i].pid == pid)
            return &b->items[i];
    if ((size_t)b->nitems >= cap)
        return NULL;
    ss_sem_item_chg_t *c = &b->items[b->nitems++];
    memset(c, 0, sizeof *c);
    c->pid = pid;
    return c;
}

/* The item of row (created, with its text, when the projection is new). */
static int row_item(sqlite3 *db, stmts_t *s, const ss_plan_node_t *N, const int *cols, int ncols, const ss_row_t *row,
                    int64_t *pid, int *fresh, char *err, size_t errsz)
{
    ss_buf_t p = SS_BUF_INIT, t = SS_BUF_INIT;
    int rc = ss_sem_proj(row, cols, ncols, &p) ? SS_ERR_NOMEM : SS_OK, found = 0;
    int64_t h = ss_state_row_hash(p.data, p.len);
    if (!rc) {
        sqlite3_reset(s->iget);
        sqlite3_bind_int64(s->iget, 1, h);
        if (find_blob(s->iget, 2, &p, &found))
            rc = ss_sem_sqlerr(db, err, errsz, "semantic items");
        if (found)
            *pid = sqlite3_column_int64(s->iget, 0);
        sqlite3_reset(s->iget);
    }
    *fresh = !found;
    if (!rc && !found) {
        rc = ss_sem_vec_text(N->tmpl, 0, row, &t) ? SS_ERR_NOMEM : SS_OK;
        sqlite3_bind_int64(s->iput, 1, h);
        sqlite3_bind_blob(s->iput, 2, p.data ? p.data : "", (int)p.len, SQLITE_STATIC);
        sqlite3_bind_text(s->iput, 3, ss_buf_cstr(&t), (int)t.len, SQLITE_STATIC);
        if (!rc && sqlite3_step(s->iput) != SQLITE_ROW)
            rc = ss_sem_sqlerr(db, err, errsz, "semantic items");
        else if (!rc)
            *pid = sqlite3_column_int64(s->iput, 0);
        sqlite3_reset(s->iput);
    }
    ss_buf_free(&p);
    ss_buf_free(&t);
    return rc;
}

/* One consolidated entry: its row record changes (inserted, reweighted or deleted). */
static int integrate_row(sqlite3 *db, stmts_t *s, const ss_plan_node_t *N, const int *cols, int ncols,
                         const ss_zentry_t *e, ss_sem_row_chg_t *x, int *fresh, char *err, size_t errsz)
{
    int rc = ss_row_encode(e->row, &x->r) ? SS_ERR_NOMEM : SS_OK, found = 0;
    int64_t h = ss_state_row_hash(x->r.data, x->r.len);
    if (!rc) {
        sqlite3_reset(s->rget);
        sqlite3_bind_int64(s->rget, 1, h);
        if (find_blob(s->rget, 3, &x->r, &found))
            rc = ss_sem_sqlerr(db, err, errsz, "semantic rows");
        if (found) {
            x->rid = sqlite3_column_int64(s->rget, 0);
            x->w0 = sqlite3_column_int64(s->rget, 1);
            x->pid = sqlite3_column_int64(s->rget, 2);
        }
        sqlite3_reset(s->rget);
    }
    *fresh = 0;
    x->w1 = x->w0 + e->w;
    if (!rc && x->w1 < 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "%s (node %d): a row deleted more often than inserted",
                         ss_plan_kind_name(N->kind), N->id);
    if (!rc && !found)
        rc = row_item(db, s, N, cols, ncols, e->row, &x->pid, fresh, err, errsz);
    if (rc)
        return rc;
    if (!found) {
        sqlite3_bind_int64(s->rput, 1, h);
        sqlite3_bind_blob(s->rput, 2, x->r.data ? x->r.data : "", (int)x->r.len, SQLITE_STATIC);
        sqlite3_bind_int64(s->rput, 3, x->w1);
        sqlite3_bind_int64(s->rput, 4, x->pid);
        if (sqlite3_step(s->rput) != SQLITE_ROW)
            rc = ss_sem_sqlerr(db, err, errsz, "semantic rows");
        else
            x->rid = sqlite3_column_int64(s->rput, 0);
        sqlite3_reset(s->rput);
        return rc;
    }
    sqlite3_stmt *st = x->w1 == 0 ? s->rdel : s->rup;
    sqlite3_bind_int64(st, 1, x->rid);
    if (x->w1)
        sqlite3_bind_int64(st, 2, x->w1);
    return step_done(db, st, err, errsz);
}

/* Embeds the texts of the batch's new items in one call and stores the embeddings. */
static int embed_fresh(ss_op_t *op, ss_op_ctx_t *ctx, ss_sem_items_batch_t *b, char *err, size_t errsz)
{
    int id = op->node->id, n = 0, rc = SS_OK, dim = 0;
    char **texts = calloc((size_t)b->nitems + 1, sizeof *texts);
    int *who = calloc((size_t)b->nitems + 1, sizeof *who);
    sqlite3_stmt *get = NULL, *put = NULL;
    if (!texts || !who)
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &get, err, errsz, "SELECT t FROM st_%d_item WHERE pid=?1", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &put, err, errsz, "UPDATE st_%d_item SET e=?2 WHERE pid=?1", id);
    for (int i = 0; i < b->nitems && !rc; i++) {
        if (!b->items[i].fresh || b->items[i].n1 <= 0)
            continue;
        sqlite3_bind_int64(get, 1, b->items[i].pid);
        if (sqlite3_step(get) == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(get, 0);
            texts[n] = ss_strdup(t ? t : "");
            who[n] = i;
            rc = texts[n++] ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        }
        sqlite3_reset(get);
    }
    float **vecs = NULL;
    if (!rc && n)
        rc = ss_sem_embed(op, ctx, (const char *const *)texts, n, &vecs, &dim, err, errsz);
    for (int i = 0; i < n && !rc; i++) {
        sqlite3_bind_int64(put, 1, b->items[who[i]].pid);
        sqlite3_bind_blob(put, 2, vecs[i], (int)(sizeof(float) * (size_t)dim), SQLITE_STATIC);
        rc = step_done(ctx->db, put, err, errsz);
    }
    for (int i = 0; i < n; i++) {
        free(texts[i]);
        if (vecs)
            free(vecs[i]);
    }
    free(vecs);
    free(texts);
    free(who);
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    return rc;
}

int ss_sem_items_apply(ss_op_t *op, ss_op_ctx_t *ctx, const int *cols, int ncols, const ss_zset_t *in,
                       ss_sem_items_batch_t *b, char *err, size_t errsz)
{
    memset(b, 0, sizeof *b);
    sqlite3 *db = ctx->db;
    stmts_t s = {0};
    ss_zset_t z;
    ss_zset_init(&z);
    int rc = ss_state_zset_consolidated(in, &z) ? ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory") : SS_OK;
    size_t cap = z.n ? z.n : 1;
    b->rows = calloc(cap, sizeof *b->rows);
    b->items = calloc(cap, sizeof *b->items);
    if (!rc && (!b->rows || !b->items))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = stmts_open(db, op->node->id, &s, err, errsz);
    for (size_t i = 0; i < z.n && !rc; i++) {
        ss_sem_row_chg_t *x = &b->rows[b->nrows++];
        int fresh = 0;
        rc = integrate_row(db, &s, op->node, cols, ncols, &z.e[i], x, &fresh, err, errsz);
        ss_sem_item_chg_t *c = rc ? NULL : item_chg(b, x->pid, cap);
        if (!rc && !c)
            rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "semantic items: more items than rows");
        if (c) {
            c->fresh |= fresh;
            c->dn += x->w1 - x->w0;
        }
    }
    for (int i = 0; i < b->nitems && !rc; i++) { /* the items' weights */
        ss_sem_item_chg_t *c = &b->items[i];
        sqlite3_bind_int64(s.inup, 1, c->pid);
        sqlite3_bind_int64(s.inup, 2, c->dn);
        if (sqlite3_step(s.inup) != SQLITE_ROW)
            rc = ss_sem_sqlerr(db, err, errsz, "semantic items");
        else {
            c->n1 = sqlite3_column_int64(s.inup, 0);
            c->n0 = c->n1 - c->dn;
        }
        sqlite3_reset(s.inup);
    }
    stmts_free(&s);
    ss_zset_destroy(&z);
    if (!rc)
        rc = embed_fresh(op, ctx, b, err, errsz);
    if (rc)
        ss_sem_items_batch_free(b);
    return rc;
}

int ss_sem_items_gc(sqlite3 *db, int id, char *err, size_t errsz)
{
    return ss_sem_exec(db, err, errsz, "DELETE FROM st_%d_item WHERE n<=0", id);
}

int ss_sem_items_vec(sqlite3 *db, int id, sqlite3_stmt **st, int64_t pid, float **v, int *dim, char *err,
                     size_t errsz)
{
    *v = NULL;
    int rc = *st ? SS_OK : ss_sem_prepare(db, st, err, errsz, "SELECT e FROM st_%d_item WHERE pid=?1", id);
    if (!rc) {
        sqlite3_reset(*st);
        sqlite3_bind_int64(*st, 1, pid);
        int nb = sqlite3_step(*st) == SQLITE_ROW ? sqlite3_column_bytes(*st, 0) : 0;
        if (nb <= 0 || nb % (int)sizeof(float))
            rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "node %d: item %lld has no embedding", id, (long long)pid);
        else if (!(*v = malloc((size_t)nb)))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        else {
            memcpy(*v, sqlite3_column_blob(*st, 0), (size_t)nb);
            *dim = nb / (int)sizeof(float);
        }
        sqlite3_reset(*st);
    }
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int ss_sem_items_relabel(ss_op_t *op, ss_op_ctx_t *ctx, const ss_sem_items_batch_t *b, const int64_t *pids,
                         const char *const *oldlab, const char *const *newlab, int n, ss_zset_t *out, char *err,
                         size_t errsz)
{
    /* rows changed in this batch are emitted by the caller from their change records */
    int64_t *changed = malloc(((size_t)b->nrows + 1) * sizeof *changed);
    if (!changed)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < b->nrows; i++)
        changed[i] = b->rows[i].rid;
    qsort(changed, (size_t)b->nrows, sizeof *changed, cmp_i64);
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT rid, r, w FROM st_%d_row WHERE pid=?1", op->node->id);
    for (int i = 0; i < n && !rc; i++) {
        if (!oldlab[i] || !newlab[i] || !strcmp(oldlab[i], newlab[i]))
            continue;
        sqlite3_bind_int64(st, 1, pids[i]);
        while (!rc && sqlite3_step(st) == SQLITE_ROW) {
            int64_t rid = sqlite3_column_int64(st, 0), w = sqlite3_column_int64(st, 2);
            int skip = bsearch(&rid, changed, (size_t)b->nrows, sizeof *changed, cmp_i64) != NULL;
            const void *r = sqlite3_column_blob(st, 1);
            size_t rn = (size_t)sqlite3_column_bytes(st, 1);
            if (!skip)
                rc = ss_sem_emit_label(r, rn, oldlab[i], -w, out);
            if (!skip && !rc)
                rc = ss_sem_emit_label(r, rn, newlab[i], w, out);
            op->stats.rows_out += !skip;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    free(changed);
    return rc;
}

int ss_sem_emit_label(const void *r, size_t rn, const char *lab, int64_t w, ss_zset_t *out)
{
    if (!w)
        return SS_OK;
    ss_row_t *row = NULL;
    int rc = ss_row_decode(r, rn, &row);
    ss_row_t *o = rc ? NULL : ss_row_new(row->n + 1);
    if (!rc && !o)
        rc = SS_ERR_NOMEM;
    for (int i = 0; !rc && i < row->n; i++)
        rc = ss_row_set(o, i, &row->v[i]);
    ss_value_t v = lab ? ss_val_text_ref(lab, strlen(lab)) : ss_val_null();
    if (!rc)
        rc = ss_row_set(o, row->n, &v);
    ss_row_free(row);
    if (rc) {
        ss_row_free(o);
        return rc;
    }
    return ss_zset_add(out, o, w);
}

int ss_sem_items_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, const char *labsql, ss_zset_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int id = op->node->id;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT r.r, %s, r.w FROM st_%d_row r JOIN st_%d_item i ON i.pid = r.pid WHERE r.w > 0",
                            labsql, id, id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW)
        rc = ss_sem_emit_label(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                               (const char *)sqlite3_column_text(st, 1), sqlite3_column_int64(st, 2), out);
    sqlite3_finalize(st);
    return rc;
}
