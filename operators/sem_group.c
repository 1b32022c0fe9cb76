/*
 * sem_group.c — SEM_GROUP('template', k) and SEM_CLUSTER('template', k): appends to every
 * row the label of one of k semantic groups (TEXT); usually a GROUP BY item.
 *
 * Definition (a function of the live rows, so the view equals a run from scratch and a
 * row's group changes only when the prototypes change):
 *   items       the distinct projections of the rows on the template's columns
 *               (sem_items.c), each embedded once (its template fields)
 *   prototypes  walk the live items in order of the hash of their projection (a
 *               consistent random sample: the same whatever the arrival order) and take
 *               the first k; with option diversity = d, skip an item whose cosine with a
 *               prototype already taken is >= d (so near-duplicates do not make two groups)
 *   assignment  each item goes to the prototype of highest cosine (ss_sem_cos, exact);
 *               ties to the prototype taken first
 *   label       SEM_CLUSTER: the prototype's template fields (its exemplar text);
 *               SEM_GROUP: a short name the model generates for the prototype (one
 *               GENERATE per prototype, greedy, memoised with the item; an empty answer
 *               falls back to the exemplar text). Two prototypes can get the same name: their
 *               groups then share a label (and a GROUP BY group).
 *
 * Maintenance: a new item is embedded and compared with the k prototypes; the prototype
 * set changes only when an item enters the first k of the walk (probability about k/N for
 * a new item) or a prototype's last row goes. Then the items of a prototype that left are
 * assigned again over the new set, and every live item is compared with the prototypes that
 * entered (O(N) exact scores, no model call). Names: a batch that adds items also names the
 * k items after the prototypes in the walk (spares), so that a delete that promotes one of
 * them finds its name ready: a delete makes a model call only when more than k prototypes
 * and spares went since the last batch that added items. Only rows whose label changed are
 * emitted (-old +new).
 *
 * State: st_<id>_item / st_<id>_row (sem_items.c; g = the item's prototype, lab = the name
 * of a prototype or spare; names of other items are dropped), st_<id>_proto(pid, ord) (the
 * prototypes, ord = their place in the walk).
 */
#include "ss_sem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_TASK "Give a short name (one to three words) for the group of inputs this example stands for."

typedef struct sem_group {
    int cols[SS_SEM_MAXCOLS], ncols;
    int k;
    int named;           /* SEM_GROUP: names from the model; SEM_CLUSTER: the exemplar */
    double diversity;    /* > 1: none */
    int max_tokens;
    char *labsql;        /* the label of item i's prototype, as SQL (snapshot) */
} sem_group_t;

/* A prototype in memory. */
typedef struct proto {
    int64_t pid;
    float *v;
    int ord;             /* place in the walk: breaks equal scores */
} proto_t;

typedef struct run {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
    ss_zset_t *out;
    char *err;
    size_t errsz;
    ss_sem_items_batch_t b;
    proto_t *p;          /* the new prototypes (walk order) */
    int np;
    int64_t *walk;       /* prototypes and spares: the items to keep names for */
    int nwalk;
    int dim;
    int adds;            /* the batch added items */
} run_t;

static int nomem(run_t *R) { return ss_seterr(R->err, R->errsz, SS_ERR_NOMEM, "out of memory"); }

static int grp_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    int rc = ss_sem_items_create(ctx->db, op->node->id, err, errsz);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_proto(pid INTEGER PRIMARY KEY, ord INTEGER NOT NULL)",
                         op->node->id);
    return rc;
}

/* The label of prototype pid, appended to out. */
static int proto_label(run_t *R, sqlite3_stmt *st, int64_t pid, ss_buf_t *out)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, pid);
    int rc = SS_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        rc = ss_buf_puts(out, (const char *)sqlite3_column_text(st, 0));
    else
        rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "%s (node %d): prototype %lld is not stored",
                       R->op->vt->name, R->op->node->id, (long long)pid);
    sqlite3_reset(st);
    return rc;
}

static int label_stmt(run_t *R, sqlite3_stmt **st)
{
    sem_group_t *G = R->op->impl;
    return ss_sem_prepare(R->ctx->db, st, R->err, R->errsz, "SELECT %s FROM st_%d_item WHERE pid=?1",
                          G->named ? "coalesce(nullif(lab, ''), t, '')" : "coalesce(t, '')", R->op->node->id);
}

/* The batch's changed rows with their group's label: -old (before) or +new (after). */
static int emit_changed(run_t *R, int after)
{
    sqlite3_stmt *g = NULL, *lab = NULL;
    int rc = ss_sem_prepare(R->ctx->db, &g, R->err, R->errsz, "SELECT g FROM st_%d_item WHERE pid=?1", R->op->node->id);
    if (!rc)
        rc = label_stmt(R, &lab);
    ss_buf_t l = SS_BUF_INIT;
    for (int i = 0; i < R->b.nrows && !rc; i++) {
        const ss_sem_row_chg_t *x = &R->b.rows[i];
        int64_t w = after ? x->w1 : -x->w0;
        if (!w)
            continue;
        sqlite3_reset(g);
        sqlite3_bind_int64(g, 1, x->pid);
        if (sqlite3_step(g) != SQLITE_ROW || sqlite3_column_type(g, 0) == SQLITE_NULL) {
            rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "%s (node %d): a row without a group", R->op->vt->name,
                           R->op->node->id);
            break;
        }
        int64_t gp = sqlite3_column_int64(g, 0);
        sqlite3_reset(g);
        ss_buf_reset(&l);
        rc = proto_label(R, lab, gp, &l);
        if (!rc)
            rc = ss_sem_emit_label(x->r.data, x->r.len, ss_buf_cstr(&l), w, R->out);
        R->op->stats.rows_out++;
    }
    ss_buf_free(&l);
    sqlite3_finalize(g);
    sqlite3_finalize(lab);
    return rc;
}

/* ------------------------------------------------------------------ prototypes */

/* An item of the walk, held while items of the same hash are put in order. */
typedef struct wcand {
    int64_t pid;
    ss_buf_t p;          /* projection: orders equal hashes */
    float *v;            /* owned */
} wcand_t;

static int wcand_cmp(const void *pa, const void *pb)
{
    const wcand_t *a = pa, *b = pb;
    size_t m = SS_MIN(a->p.len, b->p.len);
    int c = m ? memcmp(a->p.data, b->p.data, m) : 0;
    return c ? c : (a->p.len > b->p.len) - (a->p.len < b->p.len);
}

/* The walk's next item: taken (into acc / R->walk, and R->p for the first k) unless it is within
 * diversity of one taken before. Takes x->v. */
static void walk_take(run_t *R, float **acc, wcand_t *x)
{
    sem_group_t *G = R->op->impl;
    int ok = 1;
    for (int i = 0; i < R->nwalk && ok && G->diversity <= 1; i++)
        ok = ss_sem_cos(x->v, acc[i], R->dim) < G->diversity;
    if (!ok)
        return;
    acc[R->nwalk] = x->v;
    x->v = NULL;
    R->walk[R->nwalk] = x->pid;
    if (R->nwalk < G->k) {
        R->p[R->np].pid = x->pid;
        R->p[R->np].ord = R->np;
        R->p[R->np++].v = acc[R->nwalk];
    }
    R->nwalk++;
}

/* Takes the held items of one hash in order of their projection, and drops them. */
static void walk_flush(run_t *R, float **acc, wcand_t *pend, int *npend, int want)
{
    if (*npend > 1)
        qsort(pend, (size_t)*npend, sizeof *pend, wcand_cmp);
    for (int i = 0; i < *npend; i++) {
        if (R->nwalk < want)
            walk_take(R, acc, &pend[i]);
        free(pend[i].v);
        ss_buf_free(&pend[i].p);
    }
    *npend = 0;
}

/* Walks the live items in hash order (ties: projection order), reading only as far as needed:
 * the first k taken are the prototypes (R->p), the following ones (k more when the batch adds
 * items) the spares; R->walk lists both. */
static int walk(run_t *R)
{
    sem_group_t *G = R->op->impl;
    int want = G->k + (R->adds ? G->k : 0), rc = SS_OK, npend = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    wcand_t *pend = NULL;
    int64_t curh = 0;
    R->p = calloc((size_t)G->k, sizeof *R->p);
    R->walk = calloc((size_t)want, sizeof *R->walk);
    float **acc = calloc((size_t)want, sizeof *acc);
    if (!R->p || !R->walk || !acc)
        rc = nomem(R);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz,
                            "SELECT pid, h, p, e FROM st_%d_item WHERE n>0 ORDER BY h", R->op->node->id);
    while (!rc && R->nwalk < want) {
        int row = sqlite3_step(st) == SQLITE_ROW;
        int64_t h = row ? sqlite3_column_int64(st, 1) : 0;
        if (npend && (!row || h != curh))
            walk_flush(R, acc, pend, &npend, want);
        if (!row || R->nwalk >= want)
            break;
        int nb = sqlite3_column_bytes(st, 3), dim = nb / (int)sizeof(float);
        if (nb <= 0 || (R->dim && dim != R->dim)) {
            rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "%s (node %d): an item without a usable embedding",
                           R->op->vt->name, R->op->node->id);
            break;
        }
        R->dim = dim;
        if (npend == cap) {
            cap = cap ? 2 * cap : 4;
            wcand_t *v = realloc(pend, (size_t)cap * sizeof *v);
            if (!v) {
                rc = nomem(R);
                break;
            }
            pend = v;
        }
        wcand_t *x = &pend[npend++];
        memset(x, 0, sizeof *x);
        x->pid = sqlite3_column_int64(st, 0);
        curh = h;
        if (ss_buf_append(&x->p, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2)) ||
            !(x->v = malloc((size_t)nb))) {
            rc = nomem(R);
            break;
        }
        memcpy(x->v, sqlite3_column_blob(st, 3), (size_t)nb);
    }
    for (int i = 0; i < npend; i++) {
        free(pend[i].v);
        ss_buf_free(&pend[i].p);
    }
    free(pend);
    sqlite3_finalize(st);
    for (int i = R->np; acc && i < R->nwalk; i++) /* the spares' vectors (the prototypes' are R->p's) */
        free(acc[i]);
    free(acc);
    return rc;
}

/* Names the prototypes and spares that have none (SEM_GROUP): one GENERATE each, one call. */
static int name_protos(run_t *R)
{
    sem_group_t *G = R->op->impl;
    int id = R->op->node->id, rc = SS_OK, nq = 0;
    if (!G->named)
        return SS_OK;
    sqlite3_stmt *get = NULL, *row = NULL, *put = NULL;
    ss_infer_req_t *reqs = calloc((size_t)R->nwalk + 1, sizeof *reqs);
    ss_buf_t *prompts = calloc((size_t)R->nwalk + 1, sizeof *prompts);
    int64_t *who = calloc((size_t)R->nwalk + 1, sizeof *who);
    if (!reqs || !prompts || !who)
        rc = nomem(R);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &get, R->err, R->errsz, "SELECT lab IS NULL FROM st_%d_item WHERE pid=?1", id);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &row, R->err, R->errsz, "SELECT r FROM st_%d_row WHERE pid=?1 LIMIT 1", id);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &put, R->err, R->errsz, "UPDATE st_%d_item SET lab=?2 WHERE pid=?1", id);
    for (int i = 0; i < R->nwalk && !rc; i++) {
        sqlite3_reset(get);
        sqlite3_bind_int64(get, 1, R->walk[i]);
        int unnamed = sqlite3_step(get) == SQLITE_ROW && sqlite3_column_int(get, 0);
        sqlite3_reset(get);
        if (!unnamed)
            continue;
        sqlite3_reset(row);
        sqlite3_bind_int64(row, 1, R->walk[i]);
        ss_row_t *r = NULL;
        if (sqlite3_step(row) != SQLITE_ROW)
            rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "%s (node %d): item %lld has no row", R->op->vt->name, id,
                           (long long)R->walk[i]);
        else
            rc = ss_row_decode(sqlite3_column_blob(row, 0), (size_t)sqlite3_column_bytes(row, 0), &r);
        sqlite3_reset(row);
        size_t pre = 0;
        if (!rc)
            rc = ss_sem_prompt(&prompts[nq], GROUP_TASK, R->op->node->tmpl, r, NULL, " (a short name)", &pre);
        ss_row_free(r);
        if (!rc) {
            ss_sem_req_generate(&reqs[nq], ss_buf_cstr(&prompts[nq]), pre, G->max_tokens);
            ss_sem_req_sampling(&reqs[nq], R->op->node, ss_buf_cstr(&prompts[nq]), prompts[nq].len);
            who[nq++] = R->walk[i];
        }
    }
    ss_infer_res_t *res = NULL;
    if (!rc && nq) {
        res = calloc((size_t)nq, sizeof *res);
        rc = res ? ss_sem_run(R->op, R->ctx, reqs, nq, res, R->err, R->errsz) : nomem(R);
    }
    for (int i = 0; i < nq && !rc && res; i++) {
        char *t = ss_sem_gen_text(&res[i]);
        sqlite3_reset(put);
        sqlite3_bind_int64(put, 1, who[i]);
        sqlite3_bind_text(put, 2, t ? t : "", -1, SQLITE_TRANSIENT);
        if (!t)
            rc = nomem(R);
        else if (sqlite3_step(put) != SQLITE_DONE)
            rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_group names");
        sqlite3_reset(put);
        free(t);
    }
    if (res)
        ss_sem_res_free(res, nq);
    for (int i = 0; prompts && i <= R->nwalk; i++)
        ss_buf_free(&prompts[i]);
    free(prompts);
    free(reqs);
    free(who);
    sqlite3_finalize(get);
    sqlite3_finalize(row);
    sqlite3_finalize(put);
    return rc;
}

/* In a batch that adds items, drops the names of the items that are neither prototypes nor spares
 * (after the batch's rows were emitted with the labels they had). */
static int prune_names(run_t *R)
{
    sem_group_t *G = R->op->impl;
    if (!G->named || !R->adds)
        return SS_OK;
    ss_buf_t in = SS_BUF_INIT;
    int rc = ss_buf_puts(&in, "-1");
    for (int i = 0; i < R->nwalk && !rc; i++)
        rc = ss_buf_printf(&in, ",%lld", (long long)R->walk[i]);
    if (!rc)
        rc = ss_sem_exec(R->ctx->db, R->err, R->errsz,
                         "UPDATE st_%d_item SET lab=NULL WHERE lab IS NOT NULL AND pid NOT IN (%s)", R->op->node->id,
                         ss_buf_cstr(&in));
    ss_buf_free(&in);
    return rc;
}

/* ------------------------------------------------------------------ assignment */

static const proto_t *proto_of(const run_t *R, int64_t pid)
{
    for (int i = 0; i < R->np; i++)
        if (R->p[i].pid == pid)
            return &R->p[i];
    return NULL;
}

/* Is prototype a a better group than b for v (score, then walk order)? */
static int better(const run_t *R, const float *v, const proto_t *a, const proto_t *b)
{
    if (!b)
        return 1;
    double sa = ss_sem_cos(v, a->v, R->dim), sb = ss_sem_cos(v, b->v, R->dim);
    return sa > sb || (sa == sb && a->ord < b->ord);
}

/* A moved item: its pid and its labels before and after. */
typedef struct moves {
    int64_t *pid;
    char **old, **now;
    int n, cap;
} moves_t;

static void moves_free(moves_t *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->old[i]);
        free(m->now[i]);
    }
    free(m->pid);
    free(m->old);
    free(m->now);
}

static int moves_add(run_t *R, moves_t *m, sqlite3_stmt *lab, int64_t pid, int64_t from, int64_t to)
{
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 16;
        int64_t *p = realloc(m->pid, (size_t)cap * sizeof *p);
        if (p)
            m->pid = p;
        char **o = p ? realloc(m->old, (size_t)cap * sizeof *o) : NULL;
        if (o)
            m->old = o;
        char **w = o ? realloc(m->now, (size_t)cap * sizeof *w) : NULL;
        if (!w)
            return nomem(R);
        m->now = w;
        m->cap = cap;
    }
    ss_buf_t a = SS_BUF_INIT, b = SS_BUF_INIT;
    int rc = proto_label(R, lab, from, &a);
    if (!rc)
        rc = proto_label(R, lab, to, &b);
    m->pid[m->n] = pid;
    m->old[m->n] = ss_buf_take(&a);
    m->now[m->n++] = ss_buf_take(&b);
    ss_buf_free(&a);
    ss_buf_free(&b);
    return rc;
}

/* Assigns the items that must be looked at again: new items, the items of prototypes that left
 * (over the whole new set), and, when prototypes entered, every live item (against those). */
static int assign(run_t *R, moves_t *mv)
{
    int id = R->op->node->id, rc = SS_OK, entered = 0;
    sqlite3_stmt *old = NULL, *st = NULL, *up = NULL, *lab = NULL;
    int64_t *left = NULL;
    int nleft = 0;
    rc = ss_sem_prepare(R->ctx->db, &old, R->err, R->errsz, "SELECT pid FROM st_%d_proto", id);
    while (!rc && sqlite3_step(old) == SQLITE_ROW) {
        int64_t pid = sqlite3_column_int64(old, 0);
        if (proto_of(R, pid))
            continue;
        int64_t *v = realloc(left, ((size_t)nleft + 1) * sizeof *v);
        if (!v) {
            rc = nomem(R);
            break;
        }
        left = v;
        left[nleft++] = pid;
    }
    sqlite3_finalize(old);
    old = NULL;
    int *isnew = calloc((size_t)R->np + 1, sizeof *isnew);
    if (!rc && !isnew)
        rc = nomem(R);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &old, R->err, R->errsz, "SELECT 1 FROM st_%d_proto WHERE pid=?1", id);
    for (int i = 0; i < R->np && !rc; i++) {
        sqlite3_reset(old);
        sqlite3_bind_int64(old, 1, R->p[i].pid);
        isnew[i] = sqlite3_step(old) != SQLITE_ROW;
        entered |= isnew[i];
    }
    ss_buf_t sql = SS_BUF_INIT; /* every live item when prototypes entered, else the new and orphaned ones */
    if (!rc)
        rc = ss_buf_printf(&sql, "SELECT pid, g, e FROM st_%d_item WHERE n>0", id);
    if (!rc && !entered)
        rc = ss_buf_puts(&sql, " AND (g IS NULL OR g IN (-1");
    for (int i = 0; !rc && !entered && i < nleft; i++)
        rc = ss_buf_printf(&sql, ",%lld", (long long)left[i]);
    if (!rc && !entered)
        rc = ss_buf_puts(&sql, "))");
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &st, R->err, R->errsz, "%s", ss_buf_cstr(&sql));
    ss_buf_free(&sql);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &up, R->err, R->errsz, "UPDATE st_%d_item SET g=?2 WHERE pid=?1", id);
    if (!rc)
        rc = label_stmt(R, &lab);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        int64_t pid = sqlite3_column_int64(st, 0);
        int has = sqlite3_column_type(st, 1) != SQLITE_NULL;
        int64_t g = has ? sqlite3_column_int64(st, 1) : -1;
        const float *v = sqlite3_column_blob(st, 2);
        if (sqlite3_column_bytes(st, 2) != (int)sizeof(float) * R->dim) {
            rc = ss_seterr(R->err, R->errsz, SS_ERR_INTERNAL, "%s (node %d): item %lld has no embedding",
                           R->op->vt->name, id, (long long)pid);
            break;
        }
        const proto_t *cur = has ? proto_of(R, g) : NULL, *best = cur;
        for (int i = 0; i < R->np; i++) /* all of them when its prototype left, else those that entered */
            if ((!cur || isnew[i]) && better(R, v, &R->p[i], best))
                best = &R->p[i];
        if (!best || (cur && best == cur))
            continue;
        sqlite3_reset(up);
        sqlite3_bind_int64(up, 1, pid);
        sqlite3_bind_int64(up, 2, best->pid);
        if (sqlite3_step(up) != SQLITE_DONE)
            rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_group items");
        sqlite3_reset(up);
        if (!rc && has) /* a new item's rows are emitted from their change records */
            rc = moves_add(R, mv, lab, pid, g, best->pid);
    }
    sqlite3_finalize(old);
    sqlite3_finalize(st);
    sqlite3_finalize(up);
    sqlite3_finalize(lab);
    free(left);
    free(isnew);
    return rc;
}

static int store_protos(run_t *R)
{
    int id = R->op->node->id;
    sqlite3_stmt *ins = NULL;
    int rc = ss_sem_exec(R->ctx->db, R->err, R->errsz, "DELETE FROM st_%d_proto", id);
    if (!rc)
        rc = ss_sem_prepare(R->ctx->db, &ins, R->err, R->errsz, "INSERT INTO st_%d_proto(pid, ord) VALUES(?1,?2)", id);
    for (int i = 0; i < R->np && !rc; i++) {
        sqlite3_reset(ins);
        sqlite3_bind_int64(ins, 1, R->p[i].pid);
        sqlite3_bind_int(ins, 2, R->p[i].ord);
        if (sqlite3_step(ins) != SQLITE_DONE)
            rc = ss_sem_sqlerr(R->ctx->db, R->err, R->errsz, "sem_group prototypes");
    }
    sqlite3_finalize(ins);
    return rc;
}

/* ------------------------------------------------------------------ apply */

static int grp_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                     size_t errsz)
{
    sem_group_t *G = op->impl;
    (void)port;
    if (!in->n)
        return SS_OK;
    op->stats.batches++;
    op->stats.rows_in += (int64_t)in->n;
    run_t R = {.op = op, .ctx = ctx, .out = out, .err = err, .errsz = errsz};
    moves_t mv = {0};
    int rc = ss_sem_items_apply(op, ctx, G->cols, G->ncols, in, &R.b, err, errsz);
    for (int i = 0; !rc && i < R.b.nitems; i++)
        R.adds |= R.b.items[i].fresh && R.b.items[i].n1 > 0;
    if (!rc)
        rc = emit_changed(&R, 0);
    if (!rc)
        rc = walk(&R);
    if (!rc)
        rc = name_protos(&R);
    if (!rc)
        rc = assign(&R, &mv);
    if (!rc)
        rc = ss_sem_items_relabel(op, ctx, &R.b, mv.pid, (const char *const *)mv.old, (const char *const *)mv.now,
                                  mv.n, out, err, errsz);
    if (!rc)
        rc = emit_changed(&R, 1);
    if (!rc)
        rc = store_protos(&R);
    if (!rc)
        rc = prune_names(&R);
    if (!rc)
        rc = ss_sem_items_gc(ctx->db, op->node->id, err, errsz);
    moves_free(&mv);
    for (int i = 0; i < R.np; i++)
        free(R.p[i].v);
    free(R.p);
    free(R.walk);
    ss_sem_items_batch_free(&R.b);
    return rc;
}

static int grp_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    sem_group_t *G = op->impl;
    return ss_sem_items_snapshot(op, ctx, G->labsql, out, err, errsz);
}

static const char *grp_strategy(const ss_op_t *op)
{
    const sem_group_t *G = op->impl;
    return G->named ? "1 embedding per new distinct row, assigned to the nearest of k prototypes (the first k items in "
                      "hash order: the same in any arrival order); 1 generation names each prototype once; rows move "
                      "only when a prototype enters or leaves; deletes free"
                    : "1 embedding per new distinct row, assigned to the nearest of k prototypes (the first k items in "
                      "hash order); no model call; rows move only when a prototype enters or leaves";
}

static void grp_destroy(ss_op_t *op)
{
    sem_group_t *G = op->impl;
    if (G)
        free(G->labsql);
    free(G);
    op->impl = NULL;
}

static const ss_op_vtable_t sem_group_vt = {
    .name = "sem_group",
    .kind = SS_OPK_NONLINEAR,
    .init = grp_init,
    .apply = grp_apply,
    .snapshot = grp_snapshot,
    .strategy = grp_strategy,
    .destroy = grp_destroy,
};

int ss_op_sem_group_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (!N->tmpl || N->nin < 1 || N->limit < 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_group (node %d): needs a template, an input and k", N->id);
    sem_group_t *G = calloc(1, sizeof *G);
    if (!G)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    G->ncols = ss_sem_tmpl_cols(N, 0, G->cols);
    G->k = N->limit > 1000 ? 1000 : (int)N->limit;
    G->named = N->sem != SS_SEM_CLUSTER;
    G->diversity = ss_plan_opt_real(N, "diversity", 2.0);
    G->max_tokens = ss_sem_max_tokens(N, 12);
    G->labsql = ss_sprintf("(SELECT %s FROM st_%d_item q WHERE q.pid = i.g)",
                           G->named ? "coalesce(nullif(q.lab, ''), q.t, '')" : "coalesce(q.t, '')", N->id);
    op->impl = G;
    op->vt = &sem_group_vt;
    if (!G->labsql) {
        grp_destroy(op);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    return SS_OK;
}
