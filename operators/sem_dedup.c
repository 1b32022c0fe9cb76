/*
 * sem_dedup.c — SEM_DEDUP('template'): entity resolution over a stream. Appends to every
 * row its entity (TEXT): the key of the smallest row of its cluster of duplicates.
 *
 * Definition (a function of the live rows, so the view equals a run from scratch):
 *   items     the distinct projections of the rows on the template's columns (sem_items.c);
 *             rows that agree on them are the same item, hence duplicates, without a call
 *   blocking  two items are a candidate pair when the cosine of their embeddings (the
 *             template's fields, the engine's embedder) is >= threshold (default 0.9)
 *   decision  a candidate pair is asked once: "do A and B refer to the same entity?"
 *             (CHOOSE yes/no; option yes_prob), memoised per pair of projections
 *   clusters  the connected components of the items under the "yes" pairs
 *   entity    the smallest row of the cluster by its key columns (SQL order, then the row's
 *             encoding; all columns when the input has no key): its key values as text
 *             (", " between several), or its template fields when the input has no key
 *
 * Maintenance per batch: rows and items are integrated (new items embedded: one call);
 * each new item searches the FAISS index of live items for its candidates (exactly: the
 * FAISS scores only propose, ss_sem_cos decides); the pairs not memoised go to the model in
 * one dispatcher call; "yes" pairs become edges. The clusters of the touched items (the
 * items whose rows changed, and those a new edge reaches) are recomputed with union-find
 * over their stored edges: a merge joins them, a deleted item splits its cluster along
 * the remaining edges, with no model call. Only rows whose entity changed are emitted
 * (-old +new).
 *
 * State: st_<id>_item / st_<id>_row (sem_items.c; g = cluster id, the smallest pid of the
 * cluster; lab = its entity), st_<id>_pair (memo: "1"/"0" per pair of projections, with the
 * member index st_<id>_pair_m; with memo = 'prune' a projection's pairs go with its last
 * row), st_<id>_edge(a, b) (the "yes" pairs among live items, both directions). In memory:
 * the FAISS index of live items, rebuilt from st_<id>_item after a restart or rollback.
 */
#include "ss_sem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEDUP_TASK "Answer yes or no: do A and B refer to the same entity, as the instruction describes it?"

typedef struct sem_dedup {
    int cols[SS_SEM_MAXCOLS], ncols;  /* the template's columns: what an item is */
    int keys[SS_SEM_MAXCOLS], nkeys;  /* the input's key columns (0: the whole row) */
    double threshold;
    double yes_prob;
    int gc;                           /* memo = 'prune' */
    ss_sem_vidx_t idx;                /* live items by pid */
    int loaded;
} sem_dedup_t;

/* A candidate pair of the batch. */
typedef struct cand {
    int64_t a, b;        /* pids, a's projection first in encoding order */
    ss_buf_t key;        /* memo key: uint32 len(pa) | pa | pb */
    int yes, asked;
} cand_t;

typedef struct run {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
    ss_zset_t *out;
    char *err;
    size_t errsz;
    ss_sem_items_batch_t b;
    int64_t *dirty;      /* clusters to recompute */
    int ndirty, capdirty;
    cand_t *c;
    int nc, capc;
    sqlite3_stmt *vec;   /* an item's embedding (ss_sem_items_vec) */
} run_t;

/* ------------------------------------------------------------------ state */

static int dd_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    int id = op->node->id;
    int rc = ss_sem_items_create(ctx->db, id, err, errsz);
    if (!rc)
        rc = ss_sem_kv_create(ctx->db, id, "pair", err, errsz);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_edge(a INTEGER, b INTEGER, PRIMARY KEY(a, b)) WITHOUT ROWID",
                         id);
    return rc;
}

static int load(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    sem_dedup_t *D = op->impl;
    if (D->loaded)
        return SS_OK;
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pid, e FROM st_%d_item WHERE n>0 AND e IS NOT NULL", op->node->id);
    int rc = ss_sem_vidx_load(&D->idx, ctx->db, sql, err, errsz);
    D->loaded = !rc;
    return rc;
}

static void dd_rollback(ss_op_t *op)
{
    sem_dedup_t *D = op->impl;
    ss_sem_vidx_free(&D->idx);
    ss_sem_vidx_init(&D->idx);
    D->loaded = 0;
}

static int nomem(run_t *R) { return ss_seterr(R->err, R->errsz, SS_ERR_NOMEM, "out of memory"); }

/* Marks cluster g (duplicates are dropped when the clusters are read, affected()). */
static int mark_dirty(run_t *R, int64_t g)
{
    if (R->ndirty == R->capdirty) {
        int cap = R->capdirty ? 2 * R->capdirty : 16;
        int64_t *v = realloc(R->dirty, (size_t)cap * sizeof *v);
        if (!v)
            return nomem(R);
        R->dirty = v;
        R->capdirty = cap;
    }
    R->dirty[R->ndirty++] = g;
    return SS_OK;
}

/* A text column of item pid (col: "p", "lab"), appended to out; *null = 1 when NULL. */
static int item_col(run_t *R, const char *col, int64_t pid, ss_buf_t *out, int *null)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz, "SELECT %s FROM st_%d_item WHERE pid=?1", col,
                            R->op->node->id);
    if (!rc) {
        sqlite3_bind_int64(st, 1, pid);
        *null = 1;
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            *null = 0;
            rc = ss_buf_append(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------ blocking */

/* The live items other than self whose embedding scores >= threshold against q. */
static int neighbours(run_t *R, const float *q, int dim, int64_t self, int64_t **out, int *nout)
{
    sem_dedup_t *D = R->op->impl;
    int64_t count = ss_sem_vidx_count(&D->idx);
    double slack = 1e-4 + 4e-7 * dim; /* FAISS's float scores against the exact ones */
    *out = NULL;
    *nout = 0;
    int want = (int)SS_MIN(count, 32), found = 0, rc = SS_OK;
    int64_t *ids = NULL;
    float *sims = NULL;
    while (want > 0) {
        free(ids);
        free(sims);
        ids = malloc((size_t)want * sizeof *ids);
        sims = malloc((size_t)want * sizeof *sims);
        if (!ids || !sims) {
            rc = nomem(R);
            break;
        }
        rc = ss_sem_vidx_search(&D->idx, q, want, ids, sims, &found, R->err, R->errsz);
        if (rc || found < want || want >= count || (double)sims[found - 1] < D->threshold - slack)
            break;
        want = (int)SS_MIN(count, (int64_t)want * 2);
    }
    int64_t *keep = rc ? NULL : malloc(((size_t)found + 1) * sizeof *keep);
    if (!rc && !keep)
        rc = nomem(R);
    for (int i = 0; i < found && !rc; i++) {
        if (ids[i] == self || (double)sims[i] < D->threshold - slack)
            continue;
        float *v = NULL;
        int vd = 0;
        rc = ss_sem_items_vec(R->ctx->db, R->op->node->id, &R->vec, ids[i], &v, &vd, R->err, R->errsz);
        if (!rc && vd == dim && ss_sem_cos(q, v, dim) >= D->threshold)
            keep[(*nout)++] = ids[i];
        free(v);
    }
    free(ids);
    free(sims);
    if (rc)
        free(keep);
    else
        *out = keep;
    return rc;
}

/* Adds the pair {x, y}, its items ordered by projection encoding (the memo key's order). */
static int add_cand(run_t *R, int64_t x, int64_t y)
{
    ss_buf_t px = SS_BUF_INIT, py = SS_BUF_INIT;
    int nx = 0, ny = 0;
    int rc = item_col(R, "p", x, &px, &nx);
    if (!rc)
        rc = item_col(R, "p", y, &py, &ny);
    size_t m = SS_MIN(px.len, py.len);
    int c = m ? memcmp(px.data, py.data, m) : 0;
    int swap = (c ? c : (px.len > py.len) - (px.len < py.len)) > 0;
    const ss_buf_t *pa = swap ? &py : &px, *pb = swap ? &px : &py;
    if (!rc && R->nc == R->capc) {
        int cap = R->capc ? 2 * R->capc : 16;
        cand_t *v = realloc(R->c, (size_t)cap * sizeof *v);
        if (!v)
            rc = nomem(R);
        else {
            R->c = v;
            R->capc = cap;
        }
    }
    if (!rc) {
        cand_t *k = &R->c[R->nc++];
        memset(k, 0, sizeof *k);
        k->a = swap ? y : x;
        k->b = swap ? x : y;
        uint32_t la = (uint32_t)pa->len;
        rc = ss_buf_append(&k->key, &la, sizeof la);
        if (!rc && pa->len)
            rc = ss_buf_append(&k->key, pa->data, pa->len);
        if (!rc && pb->len)
            rc = ss_buf_append(&k->key, pb->data, pb->len);
    }
    ss_buf_free(&px);
    ss_buf_free(&py);
    return rc;
}

static int cand_cmp(const void *pa, const void *pb)
{
    const cand_t *a = pa, *b = pb;
    return a->a != b->a ? (a->a > b->a) - (a->a < b->a) : (a->b > b->b) - (a->b < b->b);
}

/* Candidate pairs of every new item of the batch (each pair once: two new items find each other). */
static int block(run_t *R)
{
    int rc = SS_OK;
    for (int i = 0; i < R->b.nitems && !rc; i++) {
        const ss_sem_item_chg_t *c = &R->b.items[i];
        if (!c->fresh || c->n1 <= 0)
            continue;
        float *v = NULL;
        int dim = 0, nn = 0;
        int64_t *nb = NULL;
        rc = ss_sem_items_vec(R->ctx->db, R->op->node->id, &R->vec, c->pid, &v, &dim, R->err, R->errsz);
        if (!rc)
            rc = neighbours(R, v, dim, c->pid, &nb, &nn);
        for (int j = 0; j < nn && !rc; j++)
            rc = add_cand(R, c->pid, nb[j]);
        free(nb);
        free(v);
    }
    if (rc || R->nc < 2)
        return rc;
    qsort(R->c, (size_t)R->nc, sizeof *R->c, cand_cmp);
    int m = 1;
    for (int i = 1; i < R->nc; i++) {
        if (cand_cmp(&R->c[m - 1], &R->c[i]))
            R->c[m++] = R->c[i];
        else
            ss_buf_free(&R->c[i].key);
    }
    R->nc = m;
    return SS_OK;
}

/* ------------------------------------------------------------------ decisions */

/* Any stored row of item pid (its template fields are the item's). */
static int item_row(run_t *R, sqlite3_stmt *st, int64_t pid, ss_row_t **row)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, pid);
    int rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        rc = ss_row_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), row);
    else
        rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "sem_dedup (node %d): item %lld has no row",
                       R->op->node->id, (long long)pid);
    sqlite3_reset(st);
    return rc;
}

static int pair_prompt(run_t *R, sqlite3_stmt *st, const cand_t *k, ss_buf_t *p, size_t *pre)
{
    ss_row_t *a = NULL, *b = NULL;
    const ss_template_t *t = R->op->node->tmpl;
    int rc = item_row(R, st, k->a, &a);
    if (!rc)
        rc = item_row(R, st, k->b, &b);
    if (!rc)
        rc = ss_sem_head(p, DEDUP_TASK, t);
    *pre = p->len;
    if (!rc)
        rc = ss_buf_puts(p, "### Input\n");
    if (!rc)
        rc = ss_sem_fields(p, t, 0, a, "A.");
    if (!rc)
        rc = ss_sem_fields(p, t, 0, b, "B.");
    if (!rc)
        rc = ss_buf_puts(p, "### Answer (yes or no):");
    ss_row_free(a);
    ss_row_free(b);
    return rc;
}

/* Looks every candidate up in the memo; asks the missing ones in one call and stores them. */
static int decide(run_t *R, ss_sem_kv_t *kv, ss_sem_pairs_t *pp)
{
    sem_dedup_t *D = R->op->impl;
    ss_infer_req_t *reqs = calloc((size_t)R->nc + 1, sizeof *reqs);
    ss_buf_t *prompts = calloc((size_t)R->nc + 1, sizeof *prompts);
    int *who = calloc((size_t)R->nc + 1, sizeof *who), nq = 0;
    int rc = reqs && prompts && who ? SS_OK : nomem(R);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz, "SELECT r FROM st_%d_row WHERE pid=?1 LIMIT 1",
                            R->op->node->id);
    ss_buf_t v = SS_BUF_INIT;
    for (int i = 0; i < R->nc && !rc; i++) {
        int found = 0;
        ss_buf_reset(&v);
        rc = ss_sem_kv_get(kv, R->c[i].key.data, R->c[i].key.len, &v, &found, R->err, R->errsz);
        if (!rc && found) {
            R->c[i].yes = v.len && v.data[0] == '1';
            continue;
        }
        size_t pre = 0;
        if (!rc)
            rc = pair_prompt(R, st, &R->c[i], &prompts[nq], &pre);
        if (!rc) {
            ss_sem_req_choose(&reqs[nq], ss_buf_cstr(&prompts[nq]), pre, ss_sem_yesno);
            who[nq++] = i;
        }
    }
    ss_buf_free(&v);
    sqlite3_finalize(st);
    ss_infer_res_t *res = NULL;
    if (!rc && nq) {
        res = calloc((size_t)nq, sizeof *res);
        rc = res ? ss_sem_run(R->op, R->ctx, reqs, nq, res, R->err, R->errsz) : nomem(R);
    }
    for (int i = 0; i < nq && !rc && res; i++) {
        cand_t *k = &R->c[who[i]];
        k->yes = ss_sem_yes(&res[i], D->yes_prob);
        k->asked = 1;
        rc = ss_sem_kv_put(kv, k->key.data, k->key.len, k->yes ? "1" : "0", 1, R->err, R->errsz);
        if (!rc)
            rc = ss_sem_pairs_note(pp, k->key.data, k->key.len, R->err, R->errsz);
    }
    if (res)
        ss_sem_res_free(res, nq);
    for (int i = 0; prompts && i < R->nc; i++)
        ss_buf_free(&prompts[i]);
    free(prompts);
    free(reqs);
    free(who);
    return rc;
}

/* Stores the "yes" pairs as edges and marks the clusters they reach. */
static int add_edges(run_t *R)
{
    int id = R->op->node->id, rc = SS_OK;
    sqlite3_stmt *ins = NULL, *g = NULL;
    rc = ss_sem_prepare(R->ctx->db, &ins, R->err, R->errsz, "INSERT OR IGNORE INTO st_%d_edge(a, b) VALUES(?1,?2)", id);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &g, R->err, R->errsz, "SELECT g FROM st_%d_item WHERE pid=?1 AND g IS NOT NULL",
                            id);
    for (int i = 0; i < R->nc && !rc; i++) {
        if (!R->c[i].yes)
            continue;
        int64_t e[2] = {R->c[i].a, R->c[i].b};
        for (int d = 0; d < 2 && !rc; d++) {
            sqlite3_reset(ins);
            sqlite3_bind_int64(ins, 1, e[d]);
            sqlite3_bind_int64(ins, 2, e[1 - d]);
            if (sqlite3_step(ins) != SQLITE_DONE)
                rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_dedup edges");
            sqlite3_reset(g);
            sqlite3_bind_int64(g, 1, e[d]);
            if (!rc && sqlite3_step(g) == SQLITE_ROW)
                rc = mark_dirty(R, sqlite3_column_int64(g, 0));
            sqlite3_reset(g);
        }
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(g);
    return rc;
}

/* Items whose last row went: out of the index, their edges and (memo = 'prune') their pairs. */
static int drop_items(run_t *R, ss_sem_pairs_t *pp)
{
    sem_dedup_t *D = R->op->impl;
    int id = R->op->node->id, rc = SS_OK;
    sqlite3_stmt *del = NULL;
    rc = ss_sem_prepare(R->ctx->db, &del, R->err, R->errsz, "DELETE FROM st_%d_edge WHERE a=?1 OR b=?1", id);
    for (int i = 0; i < R->b.nitems && !rc; i++) {
        const ss_sem_item_chg_t *c = &R->b.items[i];
        if (c->n1 > 0 || c->n0 <= 0)
            continue;
        rc = ss_sem_vidx_remove(&D->idx, c->pid, R->err, R->errsz);
        sqlite3_reset(del);
        sqlite3_bind_int64(del, 1, c->pid);
        if (!rc && sqlite3_step(del) != SQLITE_DONE)
            rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_dedup edges");
        if (!rc && D->gc) {
            ss_buf_t p = SS_BUF_INIT;
            int null = 0;
            rc = item_col(R, "p", c->pid, &p, &null);
            if (!rc)
                rc = ss_sem_pairs_drop(pp, -1, p.data ? p.data : "", p.len, NULL, R->err, R->errsz);
            ss_buf_free(&p);
        }
    }
    sqlite3_finalize(del);
    return rc;
}

/* ------------------------------------------------------------------ clusters */

typedef struct uf {
    int64_t *pid;        /* sorted */
    int *up;
    int n;
} uf_t;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int uf_find(uf_t *u, int i)
{
    while (u->up[i] != i) {
        u->up[i] = u->up[u->up[i]];
        i = u->up[i];
    }
    return i;
}

static int uf_index(const uf_t *u, int64_t pid)
{
    const int64_t *p = bsearch(&pid, u->pid, (size_t)u->n, sizeof *u->pid, cmp_i64);
    return p ? (int)(p - u->pid) : -1;
}

/* Is row a (encoding ea) before row b by the key columns, then the encoding? */
static int row_before(const sem_dedup_t *D, const ss_row_t *a, const ss_buf_t *ea, const ss_row_t *b,
                      const ss_buf_t *eb)
{
    for (int i = 0; i < D->nkeys; i++) {
        int c = ss_val_cmp(&a->v[D->keys[i]], &b->v[D->keys[i]]);
        if (c)
            return c < 0;
    }
    size_t m = SS_MIN(ea->len, eb->len);
    int c = m ? memcmp(ea->data, eb->data, m) : 0;
    return (c ? c : (ea->len > eb->len) - (ea->len < eb->len)) < 0;
}

/* The entity of the cluster whose items are u->pid[m[0..nm)]: its smallest row's key. */
static int cluster_label(run_t *R, const uf_t *u, const int *m, int nm, sqlite3_stmt *rows, char **lab)
{
    sem_dedup_t *D = R->op->impl;
    ss_row_t *best = NULL;
    ss_buf_t be = SS_BUF_INIT;
    int rc = SS_OK;
    for (int i = 0; i < nm && !rc; i++) {
        sqlite3_reset(rows);
        sqlite3_bind_int64(rows, 1, u->pid[m[i]]);
        while (!rc && sqlite3_step(rows) == SQLITE_ROW) {
            ss_row_t *row = NULL;
            ss_buf_t e = SS_BUF_INIT;
            rc = ss_buf_append(&e, sqlite3_column_blob(rows, 0), (size_t)sqlite3_column_bytes(rows, 0));
            if (!rc)
                rc = ss_row_decode(e.data, e.len, &row);
            if (!rc && (!best || row_before(D, row, &e, best, &be))) {
                ss_row_free(best);
                ss_buf_free(&be);
                best = row;
                be = e;
                continue;
            }
            ss_row_free(row);
            ss_buf_free(&e);
        }
        sqlite3_reset(rows);
    }
    ss_buf_t t = SS_BUF_INIT;
    for (int i = 0; !rc && best && i < D->nkeys; i++) {
        if (i)
            rc = ss_buf_puts(&t, ", ");
        if (!rc && best->v[D->keys[i]].t != SS_NULL)
            rc = ss_val_to_text(&best->v[D->keys[i]], &t);
    }
    if (!rc && best && !D->nkeys)
        rc = ss_sem_vec_text(R->op->node->tmpl, 0, best, &t);
    if (!rc && !best)
        rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "sem_dedup (node %d): a cluster without rows",
                       R->op->node->id);
    *lab = rc ? NULL : ss_buf_take(&t);
    ss_buf_free(&t);
    ss_row_free(best);
    ss_buf_free(&be);
    return rc;
}

static int uf_push(run_t *R, uf_t *u, int *cap, int64_t pid)
{
    if (u->n == *cap) {
        int c = *cap ? 2 * *cap : 16;
        int64_t *v = realloc(u->pid, (size_t)c * sizeof *v);
        if (!v)
            return nomem(R);
        u->pid = v;
        *cap = c;
    }
    u->pid[u->n++] = pid;
    return SS_OK;
}

/* The live items of the dirty clusters and the batch's new items, with their labels before. */
static int affected(run_t *R, uf_t *u, char ***old)
{
    int id = R->op->node->id, rc = SS_OK, cap = 0;
    sqlite3_stmt *st = NULL;
    if (R->ndirty > 1)
        qsort(R->dirty, (size_t)R->ndirty, sizeof *R->dirty, cmp_i64);
    rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz, "SELECT pid FROM st_%d_item WHERE g=?1 AND n>0", id);
    for (int i = 0; i < R->ndirty && !rc; i++) {
        if (i && R->dirty[i] == R->dirty[i - 1])
            continue;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, R->dirty[i]);
        while (!rc && sqlite3_step(st) == SQLITE_ROW)
            rc = uf_push(R, u, &cap, sqlite3_column_int64(st, 0));
    }
    sqlite3_finalize(st);
    for (int i = 0; i < R->b.nitems && !rc; i++)
        if (R->b.items[i].fresh && R->b.items[i].n1 > 0)
            rc = uf_push(R, u, &cap, R->b.items[i].pid);
    if (rc)
        return rc;
    if (u->n > 1)
        qsort(u->pid, (size_t)u->n, sizeof *u->pid, cmp_i64);
    int m = 0;
    for (int i = 0; i < u->n; i++)
        if (!m || u->pid[m - 1] != u->pid[i])
            u->pid[m++] = u->pid[i];
    u->n = m;
    u->up = malloc(((size_t)m + 1) * sizeof *u->up);
    *old = calloc((size_t)m + 1, sizeof **old);
    if (!u->up || !*old)
        return nomem(R);
    for (int i = 0; i < m && !rc; i++) {
        u->up[i] = i;
        ss_buf_t l = SS_BUF_INIT;
        int null = 0;
        rc = item_col(R, "lab", u->pid[i], &l, &null);
        (*old)[i] = null ? NULL : ss_buf_take(&l);
        ss_buf_free(&l);
    }
    return rc;
}

/* Unites the affected items along their stored edges (the smaller index, i.e. pid, is the root). */
static int unite(run_t *R, uf_t *u)
{
    int id = R->op->node->id;
    sqlite3_stmt *edges = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &edges, R->err, R->errsz, "SELECT b FROM st_%d_edge WHERE a=?1", id);
    for (int i = 0; i < u->n && !rc; i++) {
        sqlite3_reset(edges);
        sqlite3_bind_int64(edges, 1, u->pid[i]);
        while (!rc && sqlite3_step(edges) == SQLITE_ROW) {
            int j = uf_index(u, sqlite3_column_int64(edges, 0));
            if (j < 0) {
                rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "sem_dedup (node %d): an edge leaves the touched "
                               "clusters", id);
                break;
            }
            int a = uf_find(u, i), b = uf_find(u, j);
            if (a != b)
                u->up[a > b ? a : b] = a < b ? a : b;
        }
    }
    sqlite3_finalize(edges);
    return rc;
}

/* lab[root] = the entity of each cluster (members grouped by sorting (root, index)). */
static int label_clusters(run_t *R, uf_t *u, char **lab)
{
    sqlite3_stmt *rows = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &rows, R->err, R->errsz, "SELECT r FROM st_%d_row WHERE pid=?1",
                            R->op->node->id);
    int64_t *ord = malloc(((size_t)u->n + 1) * sizeof *ord);
    int *m = malloc(((size_t)u->n + 1) * sizeof *m);
    if (!rc && (!ord || !m))
        rc = nomem(R);
    for (int i = 0; i < u->n && !rc; i++)
        ord[i] = (int64_t)uf_find(u, i) << 32 | i;
    if (!rc && u->n > 1)
        qsort(ord, (size_t)u->n, sizeof *ord, cmp_i64);
    for (int i = 0; i < u->n && !rc; i++)
        m[i] = (int)(ord[i] & 0xffffffff);
    for (int a = 0, b = 0; a < u->n && !rc; a = b) {
        int r = (int)(ord[a] >> 32);
        for (b = a + 1; b < u->n && (int)(ord[b] >> 32) == r;)
            b++;
        rc = cluster_label(R, u, m + a, b - a, rows, &lab[r]);
    }
    free(ord);
    free(m);
    sqlite3_finalize(rows);
    return rc;
}

/* Stores each affected item's cluster (its smallest pid) and entity. */
static int store_clusters(run_t *R, uf_t *u, char **lab)
{
    sqlite3_stmt *up = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &up, R->err, R->errsz, "UPDATE st_%d_item SET g=?2, lab=?3 WHERE pid=?1",
                            R->op->node->id);
    for (int i = 0; i < u->n && !rc; i++) {
        int r = uf_find(u, i);
        sqlite3_bind_int64(up, 1, u->pid[i]);
        sqlite3_bind_int64(up, 2, u->pid[r]);
        sqlite3_bind_text(up, 3, lab[r], -1, SQLITE_STATIC);
        if (sqlite3_step(up) != SQLITE_DONE)
            rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_dedup items");
        sqlite3_reset(up);
    }
    sqlite3_finalize(up);
    return rc;
}

/* Recomputes the clusters of the affected items (union-find over their stored edges), stores
 * each item's cluster and entity and emits the rows whose entity changed. */
static int recluster(run_t *R)
{
    uf_t u = {0};
    char **old = NULL, **lab = NULL;
    const char **now = NULL;
    int rc = affected(R, &u, &old);
    if (!rc)
        rc = unite(R, &u);
    if (!rc && (!(lab = calloc((size_t)u.n + 1, sizeof *lab)) || !(now = calloc((size_t)u.n + 1, sizeof *now))))
        rc = nomem(R);
    if (!rc)
        rc = label_clusters(R, &u, lab);
    if (!rc)
        rc = store_clusters(R, &u, lab);
    for (int i = 0; i < u.n && !rc; i++)
        now[i] = lab[uf_find(&u, i)];
    if (!rc)
        rc = ss_sem_items_relabel(R->op, R->ctx, &R->b, u.pid, (const char *const *)old, now, u.n, R->out, R->err,
                                  R->errsz);
    for (int i = 0; i < u.n; i++) {
        if (old)
            free(old[i]);
        if (lab)
            free(lab[i]);
    }
    free(now);
    free(old);
    free(lab);
    free(u.pid);
    free(u.up);
    return rc;
}

/* The batch's changed rows with their item's label: -old (before) or +new (after). */
static int emit_changed(run_t *R, int after)
{
    int rc = SS_OK;
    for (int i = 0; i < R->b.nrows && !rc; i++) {
        const ss_sem_row_chg_t *x = &R->b.rows[i];
        int64_t w = after ? x->w1 : -x->w0;
        if (!w)
            continue;
        ss_buf_t l = SS_BUF_INIT;
        int null = 0;
        rc = item_col(R, "lab", x->pid, &l, &null);
        if (!rc)
            rc = ss_sem_emit_label(x->r.data, x->r.len, null ? NULL : ss_buf_cstr(&l), w, R->out);
        R->op->stats.rows_out++;
        ss_buf_free(&l);
    }
    return rc;
}

/* ------------------------------------------------------------------ apply */

static int index_fresh(run_t *R)
{
    sem_dedup_t *D = R->op->impl;
    int rc = SS_OK;
    for (int i = 0; i < R->b.nitems && !rc; i++) {
        const ss_sem_item_chg_t *c = &R->b.items[i];
        if (!c->fresh || c->n1 <= 0)
            continue;
        float *v = NULL;
        int dim = 0;
        rc = ss_sem_items_vec(R->ctx->db, R->op->node->id, &R->vec, c->pid, &v, &dim, R->err, R->errsz);
        if (!rc)
            rc = ss_sem_vidx_add(&D->idx, c->pid, v, dim, R->err, R->errsz);
        free(v);
    }
    return rc;
}

/* The clusters of the items whose rows changed. */
static int dirty_touched(run_t *R)
{
    sqlite3_stmt *g = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &g, R->err, R->errsz, "SELECT g FROM st_%d_item WHERE pid=?1 AND g IS NOT NULL",
                            R->op->node->id);
    for (int i = 0; i < R->b.nitems && !rc; i++) {
        sqlite3_reset(g);
        sqlite3_bind_int64(g, 1, R->b.items[i].pid);
        if (sqlite3_step(g) == SQLITE_ROW)
            rc = mark_dirty(R, sqlite3_column_int64(g, 0));
    }
    sqlite3_finalize(g);
    return rc;
}

static int dd_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                    size_t errsz)
{
    sem_dedup_t *D = op->impl;
    (void)port;
    if (!in->n)
        return SS_OK;
    op->stats.batches++;
    op->stats.rows_in += (int64_t)in->n;
    run_t R = {.op = op, .ctx = ctx, .out = out, .err = err, .errsz = errsz};
    ss_sem_kv_t kv = {0};
    ss_sem_pairs_t pp = {0};
    int rc = load(op, ctx, err, errsz);
    if (!rc)
        rc = ss_sem_items_apply(op, ctx, D->cols, D->ncols, in, &R.b, err, errsz);
    if (!rc)
        rc = emit_changed(&R, 0);
    if (!rc)
        rc = dirty_touched(&R);
    if (!rc)
        rc = ss_sem_kv_open(&kv, ctx->db, op->node->id, "pair", err, errsz);
    if (!rc)
        rc = ss_sem_pairs_open(&pp, ctx->db, op->node->id, "pair", err, errsz);
    if (!rc)
        rc = drop_items(&R, &pp);
    if (!rc)
        rc = index_fresh(&R);
    if (!rc)
        rc = block(&R);
    if (!rc)
        rc = decide(&R, &kv, &pp);
    if (!rc)
        rc = add_edges(&R);
    if (!rc)
        rc = recluster(&R);
    if (!rc)
        rc = emit_changed(&R, 1);
    if (!rc)
        rc = ss_sem_items_gc(ctx->db, op->node->id, err, errsz);
    ss_sem_kv_close(&kv);
    ss_sem_pairs_close(&pp);
    for (int i = 0; i < R.nc; i++)
        ss_buf_free(&R.c[i].key);
    free(R.c);
    free(R.dirty);
    sqlite3_finalize(R.vec);
    ss_sem_items_batch_free(&R.b);
    return rc;
}

static int dd_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    return ss_sem_items_snapshot(op, ctx, "i.lab", out, err, errsz);
}

static const char *dd_strategy(const ss_op_t *op)
{
    (void)op;
    return "1 embedding per new distinct row; blocking by cosine >= threshold over a FAISS index; 1 yes/no call "
           "per new candidate pair (memoised); clusters by union-find over the yes pairs, re-split from the stored "
           "pairs when a member goes (deletes free)";
}

static void dd_destroy(ss_op_t *op)
{
    sem_dedup_t *D = op->impl;
    if (D)
        ss_sem_vidx_free(&D->idx);
    free(D);
    op->impl = NULL;
}

static const ss_op_vtable_t sem_dedup_vt = {
    .name = "sem_dedup",
    .kind = SS_OPK_NONLINEAR,
    .init = dd_init,
    .apply = dd_apply,
    .snapshot = dd_snapshot,
    .strategy = dd_strategy,
    .rollback = dd_rollback,
    .destroy = dd_destroy,
};

int ss_op_sem_dedup_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (!N->tmpl || N->nin < 1 || !N->in[0] || !N->in[0]->schema)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_dedup (node %d): needs a template and an input", N->id);
    int rc = ss_sem_memo_check(N, err, errsz);
    if (rc)
        return rc;
    sem_dedup_t *D = calloc(1, sizeof *D);
    if (!D)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    D->ncols = ss_sem_tmpl_cols(N, 0, D->cols);
    const ss_schema_t *s = N->in[0]->schema;
    for (int c = 0; c < s->n && D->nkeys < SS_SEM_MAXCOLS; c++)
        if (s->is_key[c])
            D->keys[D->nkeys++] = c;
    D->threshold = ss_plan_opt_real(N, "threshold", 0.9);
    D->yes_prob = ss_sem_yes_prob(N);
    D->gc = ss_sem_memo_prune(N);
    ss_sem_vidx_init(&D->idx);
    op->impl = D;
    op->vt = &sem_dedup_vt;
    return SS_OK;
}
