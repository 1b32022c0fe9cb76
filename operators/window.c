/*
 * window.c — SS_PN_WINDOW: window functions over in[0], PARTITION BY
 * group_cols, ORDER BY order[]: each row gets one more column per function of
 * wfns (ROW_NUMBER, RANK, DENSE_RANK; COUNT, SUM, AVG, MIN, MAX over the whole
 * partition without ORDER BY, else from the partition's start through the
 * row's last peer, SQL's default frame). Rows equal in the ORDER BY values are
 * peers: they share RANK, DENSE_RANK and running aggregates; ROW_NUMBER orders
 * peers by the row's encoding, so the numbering is a function of the input
 * multiset (each copy of a duplicated row gets its own number). With a limit
 * (a `WHERE rn <= N` of the enclosing query, pushed down by the planner) only
 * the rows whose first function (a ranking one) is <= limit are output.
 *
 * Non-linear, state in SQLite: st_<id>_rows(p, sk, row, n) — every input row
 * with its multiplicity, p = the partition's normalised key (NULLs form one
 * partition, 2 and 2.0 another), sk = order-preserving ORDER BY values, so
 * that one index range is a partition in window order. A batch touches some
 * partitions; for each, the window values are computed in one ordered scan
 * before and after the change (only the first rows up to the limit when there
 * is one and no whole-partition aggregate) and the difference emitted: an
 * insert near the front of a partition renumbers what follows it, so the cost
 * is the partition's size (the limit's, with one).
 */
#include "ss_op.h"
#include "ss_state.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { S_ADD, S_DEL, S_SCAN, S_SNAPP, S_N };

typedef struct window {
    ss_state_t *st;
    ss_buf_t rb;
    int whole;      /* some aggregate covers the whole partition (no ORDER BY): scan it all */
} window_t;

static int window_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    window_t *w = op->impl;
    const ss_plan_node_t *n = op->node;
    if (!n->schema || !n->nin || n->schema->n != n->in[0]->schema->n + n->nwfns || n->nwfns < 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "window node %d: bad schema", n->id);
    w->whole = 0;
    for (int i = 0; i < n->nwfns; i++)
        w->whole |= n->wfns[i].fn >= SS_WIN_COUNT && n->norder == 0;
    if (!w->st && !(w->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    return ss_state_exec(w->st, err, errsz,
                         "CREATE TABLE IF NOT EXISTS %s_rows(p BLOB, sk BLOB, row BLOB, n INTEGER NOT NULL, "
                         "PRIMARY KEY(p, sk, row)) WITHOUT ROWID",
                         w->st->prefix);
}

/* ---- keys ---- */

static int sort_key(const ss_plan_node_t *n, const ss_row_t *r, ss_buf_t *out, char *err, size_t errsz)
{
    for (int i = 0; i < n->norder; i++) {
        ss_value_t v;
        char *owned = NULL;
        int rc = ss_expr_eval(n->order[i].expr, r, &v, &owned, err, errsz);
        if (!rc && (rc = ss_state_sortkey(out, &v, n->order[i].desc)))
            ss_seterr(err, errsz, rc, "out of memory");
        free(owned);
        if (rc)
            return rc;
    }
    return SS_OK;
}

static int add_row(window_t *w, const ss_buf_t *p, const ss_buf_t *sk, const ss_row_t *r, int64_t n, char *err,
                   size_t errsz)
{
    sqlite3_stmt *s = ss_state_stmt(w->st, S_ADD, err, errsz,
                                    "INSERT INTO %s_rows(p, sk, row, n) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(p, sk, row) "
                                    "DO UPDATE SET n = n + excluded.n RETURNING n",
                                    w->st->prefix);
    if (!s)
        return SS_ERR_SQLITE;
    ss_buf_reset(&w->rb);
    ss_state_bind_buf(s, 1, p);
    ss_state_bind_buf(s, 2, sk);
    ss_state_bind_row(s, 3, r, &w->rb);
    sqlite3_bind_int64(s, 4, n);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        return ss_state_sqlerr(w->st->db, err, errsz, "window state update");
    }
    int64_t left = sqlite3_column_int64(s, 0);
    int rc = ss_state_run(w->st, s, err, errsz);
    if (rc || left != 0)
        return rc;
    s = ss_state_stmt(w->st, S_DEL, err, errsz, "DELETE FROM %s_rows WHERE p = ?1 AND sk = ?2 AND row = ?3",
                      w->st->prefix);
    if (!s)
        return SS_ERR_SQLITE;
    ss_buf_reset(&w->rb);
    ss_state_bind_buf(s, 1, p);
    ss_state_bind_buf(s, 2, sk);
    ss_state_bind_row(s, 3, r, &w->rb);
    return ss_state_run(w->st, s, err, errsz);
}

/* ---- aggregates over a frame ---- */

typedef struct acc {
    int64_t cnt;        /* COUNT(*) or non-NULL inputs */
    __int128 isum;      /* INT inputs */
    double rsum;        /* REAL inputs (compensated) */
    double comp;
    int nreal;
    ss_value_t ext;     /* MIN / MAX so far (text owned in extbuf) */
    char *extbuf;
} acc_t;

static void acc_add(const ss_plan_wfn_t *f, acc_t *a, const ss_value_t *v)
{
    if (f->fn == SS_WIN_COUNT && !f->arg) {
        a->cnt++;
        return;
    }
    if (v->t == SS_NULL)
        return;
    a->cnt++;
    if (f->fn == SS_WIN_SUM || f->fn == SS_WIN_AVG) {
        if (v->t == SS_INT) {
            a->isum += v->u.i;
        } else {
            double x = v->t == SS_REAL ? v->u.r : strtod(v->u.str.s, NULL);
            double y = x - a->comp, t = a->rsum + y; /* Kahan */
            a->comp = (t - a->rsum) - y;
            a->rsum = t;
            a->nreal++;
        }
    } else if (f->fn == SS_WIN_MIN || f->fn == SS_WIN_MAX) {
        int c = a->ext.t == SS_NULL ? 1 : ss_val_cmp(v, &a->ext);
        if (a->ext.t == SS_NULL || (f->fn == SS_WIN_MIN ? c < 0 : c > 0)) {
            free(a->extbuf);
            a->extbuf = NULL;
            a->ext = *v;
            if (v->t == SS_TEXT && (a->extbuf = ss_strndup(v->u.str.s, v->u.str.n)))
                a->ext.u.str.s = a->extbuf;
            else if (v->t == SS_TEXT)
                a->ext = ss_val_null();
        }
    }
}

static ss_value_t acc_value(const ss_plan_wfn_t *f, const acc_t *a)
{
    switch (f->fn) {
    case SS_WIN_COUNT: return ss_val_int(a->cnt);
    case SS_WIN_SUM:
        if (!a->cnt)
            return ss_val_null();
        if (!a->nreal && a->isum >= INT64_MIN && a->isum <= INT64_MAX)
            return ss_val_int((int64_t)a->isum);
        return ss_val_real((double)a->isum + a->rsum);
    case SS_WIN_AVG: return a->cnt ? ss_val_real(((double)a->isum + a->rsum) / (double)a->cnt) : ss_val_null();
    case SS_WIN_MIN:
    case SS_WIN_MAX: return a->ext;
    default: return ss_val_null();
    }
}

/* ---- one partition ---- */

typedef struct prow {  /* a row of the partition, in window order */
    ss_buf_t sk;
    ss_row_t *row;
    int64_t n;
} prow_t;

static void free_prows(prow_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ss_buf_free(&r[i].sk);
        ss_row_free(r[i].row);
    }
    free(r);
}

/* The partition's rows in order; with a limit and no whole-partition aggregate, only as many as
 * the limit can reach (peers of the last one included). */
static int load_partition(window_t *w, const ss_plan_node_t *n, const ss_buf_t *p, prow_t **out, size_t *nout,
                          char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(w->st, S_SCAN, err, errsz,
                                    "SELECT sk, row, n FROM %s_rows WHERE p = ?1 ORDER BY sk, row", w->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, p);
    size_t cap = 0;
    int64_t seen = 0, distinct = 0;
    int rc = SS_OK;
    *out = NULL;
    *nout = 0;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        const void *sk = sqlite3_column_blob(q, 0);
        size_t sklen = (size_t)sqlite3_column_bytes(q, 0);
        int newpeer = !*nout || (*out)[*nout - 1].sk.len != sklen ||
                      (sklen && memcmp((*out)[*nout - 1].sk.data, sk, sklen));
        if (n->limit >= 0 && !w->whole && newpeer &&
            (n->wfns[0].fn == SS_WIN_DENSE_RANK ? distinct : seen) >= n->limit)
            break; /* every later row ranks beyond the limit */
        if (*nout == cap) {
            cap = cap ? cap * 2 : 16;
            prow_t *nr = realloc(*out, cap * sizeof *nr);
            if (!nr) {
                rc = SS_ERR_NOMEM;
                break;
            }
            *out = nr;
        }
        prow_t *r = &(*out)[*nout];
        memset(r, 0, sizeof *r);
        (*nout)++;
        rc = ss_buf_append(&r->sk, sk ? sk : "", sklen);
        if (!rc)
            rc = ss_state_column_row(q, 1, &r->row);
        r->n = sqlite3_column_int64(q, 2);
        seen += r->n;
        distinct += newpeer;
    }
    sqlite3_reset(q);
    if (rc) {
        free_prows(*out, *nout);
        *out = NULL;
        *nout = 0;
        return ss_seterr(err, errsz, rc, "window state of node %d: load failed", w->st->id);
    }
    return SS_OK;
}

static int eval_arg(const ss_plan_wfn_t *f, const ss_row_t *r, ss_value_t *v, char **owned, char *err, size_t errsz)
{
    *owned = NULL;
    *v = ss_val_null();
    return f->arg ? ss_expr_eval(f->arg, r, v, owned, err, errsz) : SS_OK;
}

/* Adds the window rows of one partition (rows r[0..nr), in order) times sign to out. */
static int emit_partition(const ss_plan_node_t *n, const prow_t *r, size_t nr, int64_t sign, ss_zset_t *out,
                          char *err, size_t errsz)
{
    int nf = n->nwfns, rc = SS_OK;
    acc_t *acc = calloc((size_t)nf + 1, sizeof *acc);
    ss_value_t *val = calloc((size_t)nf + 1, sizeof *val);
    if (!acc || !val)
        rc = SS_ERR_NOMEM;
    /* aggregates without ORDER BY see the whole partition */
    for (size_t i = 0; !rc && n->norder == 0 && i < nr; i++)
        for (int f = 0; f < nf && !rc; f++) {
            ss_value_t v;
            char *owned;
            if (n->wfns[f].fn < SS_WIN_COUNT || (rc = eval_arg(&n->wfns[f], r[i].row, &v, &owned, err, errsz)))
                continue;
            for (int64_t k = 0; k < r[i].n; k++)
                acc_add(&n->wfns[f], &acc[f], &v);
            free(owned);
        }
    int64_t rownum = 0, rank = 0, dense = 0;
    for (size_t i = 0; !rc && i < nr;) {
        size_t e = i + 1; /* peers: r[i .. e) */
        while (e < nr && r[e].sk.len == r[i].sk.len && !memcmp(r[e].sk.data, r[i].sk.data, r[i].sk.len))
            e++;
        rank = rownum + 1;
        dense++;
        for (size_t k = i; !rc && n->norder && k < e; k++) /* running aggregates: through the last peer */
            for (int f = 0; f < nf && !rc; f++) {
                ss_value_t v;
                char *owned;
                if (n->wfns[f].fn < SS_WIN_COUNT || (rc = eval_arg(&n->wfns[f], r[k].row, &v, &owned, err, errsz)))
                    continue;
                for (int64_t c = 0; c < r[k].n; c++)
                    acc_add(&n->wfns[f], &acc[f], &v);
                free(owned);
            }
        for (size_t k = i; !rc && k < e; k++)
            for (int64_t c = 0; !rc && c < r[k].n; c++) {
                rownum++;
                for (int f = 0; f < nf; f++) {
                    switch (n->wfns[f].fn) {
                    case SS_WIN_ROW_NUMBER: val[f] = ss_val_int(rownum); break;
                    case SS_WIN_RANK: val[f] = ss_val_int(rank); break;
                    case SS_WIN_DENSE_RANK: val[f] = ss_val_int(dense); break;
                    default: val[f] = acc_value(&n->wfns[f], &acc[f]); break;
                    }
                }
                if (n->limit >= 0 && n->wfns[0].fn <= SS_WIN_DENSE_RANK && val[0].u.i > n->limit)
                    continue;
                const ss_row_t *in = r[k].row;
                ss_row_t *o = ss_row_new(in->n + nf);
                rc = o ? SS_OK : SS_ERR_NOMEM;
                for (int j = 0; !rc && j < in->n + nf; j++)
                    rc = ss_row_set(o, j, j < in->n ? &in->v[j] : &val[j - in->n]);
                if (rc)
                    ss_row_free(o);
                else
                    rc = ss_zset_add(out, o, sign);
            }
        i = e;
    }
    for (int f = 0; acc && f < nf; f++)
        free(acc[f].extbuf);
    free(acc);
    free(val);
    if (rc == SS_ERR_NOMEM)
        ss_seterr(err, errsz, rc, "out of memory");
    return rc;
}

static int partition_rows(window_t *w, const ss_plan_node_t *n, const ss_buf_t *p, int64_t sign, ss_zset_t *out,
                          char *err, size_t errsz)
{
    prow_t *r = NULL;
    size_t nr = 0;
    int rc = load_partition(w, n, p, &r, &nr, err, errsz);
    if (!rc)
        rc = emit_partition(n, r, nr, sign, out, err, errsz);
    free_prows(r, nr);
    return rc;
}

/* ---- apply ---- */

typedef struct went {
    ss_buf_t p, sk;
    const ss_row_t *row;
    int64_t w;
} went_t;

static int went_cmp(const void *a, const void *b)
{
    const went_t *x = a, *y = b;
    size_t n = SS_MIN(x->p.len, y->p.len);
    int c = n ? memcmp(x->p.data, y->p.data, n) : 0;
    return c ? c : x->p.len < y->p.len ? -1 : x->p.len > y->p.len;
}

static int window_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                        char *err, size_t errsz)
{
    (void)ctx;
    (void)port;
    window_t *w = op->impl;
    const ss_plan_node_t *n = op->node;
    if (in->n == 0)
        return SS_OK;
    ss_zset_t z;
    ss_zset_init(&z);
    int rc = ss_state_zset_consolidated(in, &z);
    went_t *e = calloc(z.n + 1, sizeof *e);
    if (!e)
        rc = SS_ERR_NOMEM;
    for (size_t i = 0; i < z.n && !rc; i++) {
        e[i].row = z.e[i].row;
        e[i].w = z.e[i].w;
        rc = ss_state_encode_cols(z.e[i].row, n->group_cols, n->ngroup, 1, &e[i].p, NULL);
        if (rc)
            ss_seterr(err, errsz, rc, "window partition keys");
        else
            rc = sort_key(n, z.e[i].row, &e[i].sk, err, errsz);
    }
    if (!rc)
        qsort(e, z.n, sizeof *e, went_cmp);
    for (size_t i = 0; i < z.n && !rc;) {
        size_t k = i + 1;
        while (k < z.n && went_cmp(&e[i], &e[k]) == 0)
            k++;
        rc = partition_rows(w, n, &e[i].p, -1, out, err, errsz); /* before */
        for (size_t j = i; j < k && !rc; j++)
            rc = add_row(w, &e[j].p, &e[j].sk, e[j].row, e[j].w, err, errsz);
        if (!rc)
            rc = partition_rows(w, n, &e[i].p, 1, out, err, errsz); /* after */
        i = k;
    }
    for (size_t i = 0; e && i < z.n; i++) {
        ss_buf_free(&e[i].p);
        ss_buf_free(&e[i].sk);
    }
    free(e);
    ss_zset_destroy(&z);
    if (!rc)
        rc = ss_zset_consolidate(out) ? ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory") : SS_OK;
    if (rc)
        ss_errprefix(err, errsz, "window (node %d)", n->id);
    return rc;
}

static int window_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    window_t *w = op->impl;
    sqlite3_stmt *q = ss_state_stmt(w->st, S_SNAPP, err, errsz, "SELECT DISTINCT p FROM %s_rows", w->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_buf_t *ps = NULL;
    size_t np = 0, cap = 0;
    int rc = SS_OK;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) { /* collected first: the scan reuses statements */
        if (np == cap) {
            cap = cap ? cap * 2 : 16;
            ss_buf_t *nb = realloc(ps, cap * sizeof *nb);
            if (!nb) {
                rc = SS_ERR_NOMEM;
                break;
            }
            ps = nb;
        }
        memset(&ps[np], 0, sizeof ps[np]);
        const void *b = sqlite3_column_blob(q, 0);
        rc = ss_buf_append(&ps[np++], b ? b : "", (size_t)sqlite3_column_bytes(q, 0));
    }
    sqlite3_reset(q);
    for (size_t i = 0; i < np && !rc; i++)
        rc = partition_rows(w, op->node, &ps[i], 1, out, err, errsz);
    for (size_t i = 0; i < np; i++)
        ss_buf_free(&ps[i]);
    free(ps);
    return rc ? ss_seterr(err, errsz, rc, "window (node %d) snapshot", op->node->id) : SS_OK;
}

static const char *window_strategy(const ss_op_t *op)
{
    return op->node->limit >= 0 ? "non-linear: partitions ordered in SQLite; a change re-reads the first rows of "
                                  "its partition up to the rank limit and emits the differences"
                                : "non-linear: partitions ordered in SQLite; a change recomputes its partition's "
                                  "window values and emits the differences";
}

static void window_destroy(ss_op_t *op)
{
    window_t *w = op->impl;
    if (!w)
        return;
    ss_state_destroy(w->st);
    ss_buf_free(&w->rb);
    free(w);
    op->impl = NULL;
}

static const ss_op_vtable_t window_vt = {
    "window", SS_OPK_NONLINEAR, window_init, window_apply, window_snapshot, window_strategy,
    window_destroy, NULL,
};

int ss_op_window_init(ss_op_t *op, char *err, size_t errsz)
{
    window_t *w = calloc(1, sizeof *w);
    if (!w)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    op->vt = &window_vt;
    op->impl = w;
    return SS_OK;
}
