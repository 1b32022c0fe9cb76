/*
 * semijoin.c — SS_PN_SEMIJOIN: the rows of in[0] (port 0) filtered or marked
 * by whether in[1] (port 1) has matching rows: EXISTS / NOT EXISTS and
 * [NOT] IN (SELECT ...) subqueries, and the unmatched right rows of a FULL
 * JOIN. Keys: lkeys[i] = rkeys[i] (SQL '=': 2 matches 2.0, NULL matches
 * nothing); with semi_in the last pair is the IN column; pred (optional, not
 * with semi_in) is a residual condition on l ++ r.
 *
 * The match of a left row l, with c = its correlation keys and v its IN value:
 *   EXISTS: m(l) = Σ n of right rows of key c passing pred; TRUE when m > 0.
 *   IN:     FALSE if the subquery (the right rows of c) is empty; else NULL if
 *           v is NULL; else TRUE if some right row equals v; else NULL if some
 *           right row's value is NULL; else FALSE. (SQL's three-valued IN.)
 * semi_mode SEMI emits l when its match is TRUE, ANTI when FALSE (NOT IN is
 * TRUE exactly then), MARK emits l ++ [match] for every l.
 *
 * Non-linear, state in SQLite (c and v are prefixed encodings: 0x00 = NULL,
 * 0x01 + the normalised key otherwise; v is empty without semi_in):
 *   st_<id>_l(c, v, row, n)  every left row;
 *   st_<id>_r(c, v, row, n)  right rows (row kept only when pred needs it);
 *   st_<id>_s(c, total, nulls)  per key: Σ n of right rows, and of those with a NULL v.
 * A left delta looks its match up and is stored. A right delta, per key c,
 * finds the left rows whose match may change — all of c when the key's
 * emptiness or NULL presence flips or pred must be re-evaluated, else only
 * those with a changed v — computes their match before and after (after =
 * state + delta, arithmetically) and emits the difference; then the right
 * state is updated. Right rows with a NULL key are never stored.
 */
#include "ss_op.h"
#include "ss_state.h"

#include <stdlib.h>
#include <string.h>

enum { S_LADD, S_LDEL, S_RADD, S_RDEL, S_SGET, S_SPUT, S_SDEL, S_CNT, S_RSCAN, S_LC, S_LCV, S_SNAP, S_N };

typedef struct semijoin {
    ss_state_t *st;
    int ncorr;      /* correlation key pairs (nkeys, less the IN pair) */
    ss_buf_t rb;
} semijoin_t;

/* An entry of a delta with its encoded keys. */
typedef struct sent {
    ss_buf_t c, v;
    const ss_row_t *row;
    int64_t w;
} sent_t;

static int semijoin_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    semijoin_t *s = op->impl;
    const ss_plan_node_t *n = op->node;
    if (!n->schema || n->nin != 2 || n->nkeys < (n->semi_in ? 1 : 0) || (n->semi_in && n->pred) ||
        (n->nkeys && (!n->lkeys || !n->rkeys)))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "semijoin node %d: bad keys or schema", n->id);
    s->ncorr = n->nkeys - (n->semi_in ? 1 : 0);
    if (!s->st && !(s->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    const char *p = s->st->prefix;
    return ss_state_exec(s->st, err, errsz,
                         "CREATE TABLE IF NOT EXISTS %s_l(c BLOB, v BLOB, row BLOB, n INTEGER NOT NULL, "
                         "PRIMARY KEY(c, v, row)) WITHOUT ROWID;"
                         "CREATE TABLE IF NOT EXISTS %s_r(c BLOB, v BLOB, row BLOB, n INTEGER NOT NULL, "
                         "PRIMARY KEY(c, v, row)) WITHOUT ROWID;"
                         "CREATE TABLE IF NOT EXISTS %s_s(c BLOB PRIMARY KEY, total INTEGER NOT NULL, "
                         "nulls INTEGER NOT NULL) WITHOUT ROWID;",
                         p, p, p);
}

/* ---- keys ---- */

/* Prefixed encoding of r's columns cols[0..n): 0x00 when one is NULL, else 0x01 + the key. */
static int enc_key(const ss_row_t *r, const int *cols, int n, ss_buf_t *out)
{
    ss_buf_t k = SS_BUF_INIT;
    int has_null = 0;
    int rc = ss_state_encode_cols(r, cols, n, 1, &k, &has_null);
    if (!rc)
        rc = has_null ? ss_buf_putc(out, 0) : ss_buf_putc(out, 1);
    if (!rc && !has_null)
        rc = ss_buf_append(out, k.data ? k.data : "", k.len);
    ss_buf_free(&k);
    return rc;
}

static int is_null_key(const ss_buf_t *b) { return b->len == 1 && b->data[0] == 0; }

static int entry_keys(const ss_plan_node_t *n, int ncorr, int port, sent_t *e)
{
    const int *cols = port ? n->rkeys : n->lkeys;
    int rc = enc_key(e->row, cols, ncorr, &e->c);
    if (!rc && n->semi_in)
        rc = enc_key(e->row, cols + ncorr, 1, &e->v);
    return rc;
}

/* ---- the right side's state ---- */

typedef struct summary {
    int64_t total, nulls;
} summary_t;

static int get_summary(semijoin_t *s, const ss_buf_t *c, summary_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(s->st, S_SGET, err, errsz, "SELECT total, nulls FROM %s_s WHERE c = ?1",
                                    s->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, c);
    int sr = sqlite3_step(q);
    out->total = sr == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    out->nulls = sr == SQLITE_ROW ? sqlite3_column_int64(q, 1) : 0;
    sqlite3_reset(q);
    return sr == SQLITE_ROW || sr == SQLITE_DONE ? SS_OK : ss_state_sqlerr(s->st->db, err, errsz, "semijoin summary");
}

static int put_summary(semijoin_t *s, const ss_buf_t *c, const summary_t *sm, char *err, size_t errsz)
{
    sqlite3_stmt *q = sm->total || sm->nulls
                          ? ss_state_stmt(s->st, S_SPUT, err, errsz,
                                          "INSERT OR REPLACE INTO %s_s(c, total, nulls) VALUES(?1, ?2, ?3)",
                                          s->st->prefix)
                          : ss_state_stmt(s->st, S_SDEL, err, errsz, "DELETE FROM %s_s WHERE c = ?1", s->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, c);
    if (sm->total || sm->nulls) {
        sqlite3_bind_int64(q, 2, sm->total);
        sqlite3_bind_int64(q, 3, sm->nulls);
    }
    return ss_state_run(s->st, q, err, errsz);
}

/* Count of right rows with key (c, v) (any row). */
static int get_count(semijoin_t *s, const ss_buf_t *c, const ss_buf_t *v, int64_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(s->st, S_CNT, err, errsz, "SELECT total(n) FROM %s_r WHERE c = ?1 AND v = ?2",
                                    s->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, c);
    ss_state_bind_buf(q, 2, v);
    int sr = sqlite3_step(q);
    *out = sr == SQLITE_ROW ? (int64_t)sqlite3_column_double(q, 0) : 0;
    sqlite3_reset(q);
    return sr == SQLITE_ROW ? SS_OK : ss_state_sqlerr(s->st->db, err, errsz, "semijoin count");
}

/* Adds w to (c, v, row) in table side ("l" or "r"). */
static int add_state(semijoin_t *s, int right, const ss_buf_t *c, const ss_buf_t *v, const ss_row_t *row, int64_t w,
                     char *err, size_t errsz)
{
    const char *t = right ? "r" : "l";
    sqlite3_stmt *q = ss_state_stmt(s->st, right ? S_RADD : S_LADD, err, errsz,
                                    "INSERT INTO %s_%s(c, v, row, n) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(c, v, row) "
                                    "DO UPDATE SET n = n + excluded.n RETURNING n",
                                    s->st->prefix, t);
    if (!q)
        return SS_ERR_SQLITE;
    ss_buf_reset(&s->rb);
    ss_state_bind_buf(q, 1, c);
    ss_state_bind_buf(q, 2, v);
    if (row)
        ss_state_bind_row(q, 3, row, &s->rb);
    else
        ss_state_bind_buf(q, 3, &s->rb);
    sqlite3_bind_int64(q, 4, w);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_reset(q);
        return ss_state_sqlerr(s->st->db, err, errsz, "semijoin state update");
    }
    int64_t n = sqlite3_column_int64(q, 0);
    int rc = ss_state_run(s->st, q, err, errsz);
    if (rc || n != 0)
        return rc;
    q = ss_state_stmt(s->st, right ? S_RDEL : S_LDEL, err, errsz, "DELETE FROM %s_%s WHERE c = ?1 AND v = ?2 AND row = ?3",
                      s->st->prefix, t);
    if (!q)
        return SS_ERR_SQLITE;
    ss_buf_reset(&s->rb);
    ss_state_bind_buf(q, 1, c);
    ss_state_bind_buf(q, 2, v);
    if (row)
        ss_state_bind_row(q, 3, row, &s->rb);
    else
        ss_state_bind_buf(q, 3, &s->rb);
    return ss_state_run(s->st, q, err, errsz);
}

/* ---- matches ---- */

enum { M_FALSE = 0, M_TRUE = 1, M_NULL = 2 };

static int pred_ok(const ss_plan_node_t *n, const ss_row_t *l, const ss_row_t *r, int *ok, char *err, size_t errsz)
{
    ss_row_t *c = ss_row_new(l->n + r->n);
    int rc = c ? SS_OK : SS_ERR_NOMEM;
    for (int i = 0; !rc && i < l->n + r->n; i++)
        rc = ss_row_set(c, i, i < l->n ? &l->v[i] : &r->v[i - l->n]);
    ss_value_t v;
    char *owned = NULL;
    if (!rc)
        rc = ss_expr_eval(n->pred, c, &v, &owned, err, errsz);
    else
        ss_seterr(err, errsz, rc, "out of memory");
    *ok = !rc && ss_val_truthy(&v);
    free(owned);
    ss_row_free(c);
    return rc;
}

/* The right rows of key c (with pred: their rows are needed). */
typedef struct rrows {
    size_t n, cap;
    ss_row_t **row;
    int64_t *cnt;
} rrows_t;

static void rrows_free(rrows_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        ss_row_free(r->row[i]);
    free(r->row);
    free(r->cnt);
    memset(r, 0, sizeof *r);
}

static int load_right(semijoin_t *s, const ss_buf_t *c, rrows_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(s->st, S_RSCAN, err, errsz, "SELECT row, n FROM %s_r WHERE c = ?1",
                                    s->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, c);
    int rc = SS_OK;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 8;
            ss_row_t **r = realloc(out->row, cap * sizeof *r);
            int64_t *k = r ? realloc(out->cnt, cap * sizeof *k) : NULL;
            if (r)
                out->row = r;
            if (!k) {
                rc = SS_ERR_NOMEM;
                break;
            }
            out->cnt = k;
            out->cap = cap;
        }
        rc = ss_state_column_row(q, 0, &out->row[out->n]);
        if (!rc)
            out->cnt[out->n++] = sqlite3_column_int64(q, 1);
    }
    sqlite3_reset(q);
    return rc ? ss_seterr(err, errsz, rc, "semijoin state of node %d: load failed", s->st->id) : SS_OK;
}

/* m(l) over the right rows rr (plus, when d is given, the delta entries d[0..nd) of this key). */
static int exists_count(const ss_plan_node_t *n, const ss_row_t *l, const rrows_t *rr, const sent_t *d, size_t nd,
                        int64_t *m, char *err, size_t errsz)
{
    *m = 0;
    for (size_t i = 0; i < rr->n; i++) {
        int ok = 1, rc = pred_ok(n, l, rr->row[i], &ok, err, errsz);
        if (rc)
            return rc;
        *m += ok ? rr->cnt[i] : 0;
    }
    for (size_t i = 0; i < nd; i++) {
        int ok = 1, rc = pred_ok(n, l, d[i].row, &ok, err, errsz);
        if (rc)
            return rc;
        *m += ok ? d[i].w : 0;
    }
    return SS_OK;
}

static int in_match(const summary_t *sm, int v_null, int64_t cnt)
{
    if (sm->total <= 0)
        return M_FALSE;
    if (v_null)
        return M_NULL;
    if (cnt > 0)
        return M_TRUE;
    return sm->nulls > 0 ? M_NULL : M_FALSE;
}

/* Appends what the mode emits for l with match m, times w. */
static int emit(const ss_plan_node_t *n, const ss_row_t *l, int m, int64_t w, ss_zset_t *out)
{
    if (!w)
        return SS_OK;
    switch (n->semi_mode) {
    case SS_SEMI_SEMI: return m == M_TRUE ? ss_zset_add_copy(out, l, w) : SS_OK;
    case SS_SEMI_ANTI: return m == M_FALSE ? ss_zset_add_copy(out, l, w) : SS_OK;
    case SS_SEMI_MARK: {
        ss_row_t *r = ss_row_new(l->n + 1);
        if (!r)
            return SS_ERR_NOMEM;
        for (int i = 0; i < l->n; i++)
            if (ss_row_set(r, i, &l->v[i])) {
                ss_row_free(r);
                return SS_ERR_NOMEM;
            }
        r->v[l->n] = m == M_NULL ? ss_val_null() : ss_val_int(m == M_TRUE);
        return ss_zset_add(out, r, w);
    }
    }
    return SS_OK;
}

/* The match of a left row against the current right state (rr: the right rows of its key, when pred). */
static int match_now(semijoin_t *s, const ss_plan_node_t *n, const ss_buf_t *c, const ss_buf_t *v,
                     const ss_row_t *l, const rrows_t *rr, int *m, char *err, size_t errsz)
{
    if (n->pred) {
        int64_t cnt;
        int rc = exists_count(n, l, rr, NULL, 0, &cnt, err, errsz);
        *m = cnt > 0 ? M_TRUE : M_FALSE;
        return rc;
    }
    summary_t sm;
    int rc = get_summary(s, c, &sm, err, errsz);
    if (rc || !n->semi_in) {
        *m = sm.total > 0 ? M_TRUE : M_FALSE;
        return rc;
    }
    int64_t cnt = 0;
    if (sm.total > 0 && !is_null_key(v) && (rc = get_count(s, c, v, &cnt, err, errsz)))
        return rc;
    *m = in_match(&sm, is_null_key(v), cnt);
    return SS_OK;
}

/* ---- applying deltas ---- */

static int apply_left(ss_op_t *op, sent_t *e, size_t ne, ss_zset_t *out, char *err, size_t errsz)
{
    semijoin_t *s = op->impl;
    const ss_plan_node_t *n = op->node;
    rrows_t rr = {0};
    int rc = SS_OK;
    for (size_t i = 0; i < ne && !rc; i++) {
        if (n->pred && (i == 0 || e[i].c.len != e[i - 1].c.len || memcmp(e[i].c.data, e[i - 1].c.data, e[i].c.len))) {
            rrows_free(&rr);
            rc = load_right(s, &e[i].c, &rr, err, errsz);
        }
        int m = M_FALSE;
        if (!rc)
            rc = match_now(s, n, &e[i].c, &e[i].v, e[i].row, &rr, &m, err, errsz);
        if (!rc && (rc = emit(n, e[i].row, m, e[i].w, out)))
            ss_seterr(err, errsz, rc, "out of memory");
        if (!rc)
            rc = add_state(s, 0, &e[i].c, &e[i].v, e[i].row, e[i].w, err, errsz);
    }
    rrows_free(&rr);
    return rc;
}

static int buf_eq(const ss_buf_t *a, const ss_buf_t *b)
{
    return a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

/* Σ w of the delta entries d[0..nd) with value v (IN), or all of them (v NULL). */
static int64_t delta_count(const sent_t *d, size_t nd, const ss_buf_t *v)
{
    int64_t w = 0;
    for (size_t i = 0; i < nd; i++)
        w += !v || buf_eq(&d[i].v, v) ? d[i].w : 0;
    return w;
}

/* Left rows of key c (with value v when v is given), their match before and after the right
 * delta d[0..nd) of that key; emits the differences. */
static int reemit(ss_op_t *op, const ss_buf_t *c, const ss_buf_t *v, const sent_t *d, size_t nd,
                  const summary_t *before, const summary_t *after, const rrows_t *rr, ss_zset_t *out, char *err,
                  size_t errsz)
{
    semijoin_t *s = op->impl;
    const ss_plan_node_t *n = op->node;
    sqlite3_stmt *q = v ? ss_state_stmt(s->st, S_LCV, err, errsz,
                                        "SELECT v, row, n FROM %s_l WHERE c = ?1 AND v = ?2", s->st->prefix)
                        : ss_state_stmt(s->st, S_LC, err, errsz, "SELECT v, row, n FROM %s_l WHERE c = ?1",
                                        s->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, c);
    if (v)
        ss_state_bind_buf(q, 2, v);
    int rc = SS_OK;
    ss_buf_t lv = SS_BUF_INIT;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        ss_row_t *l = NULL;
        int64_t ln = sqlite3_column_int64(q, 2);
        ss_buf_reset(&lv);
        rc = ss_buf_append(&lv, sqlite3_column_blob(q, 0) ? sqlite3_column_blob(q, 0) : "",
                           (size_t)sqlite3_column_bytes(q, 0));
        if (!rc)
            rc = ss_state_column_row(q, 1, &l);
        int m0 = M_FALSE, m1 = M_FALSE;
        if (!rc && n->pred) {
            int64_t a, b;
            rc = exists_count(n, l, rr, NULL, 0, &a, err, errsz);
            if (!rc)
                rc = exists_count(n, l, rr, d, nd, &b, err, errsz);
            m0 = a > 0 ? M_TRUE : M_FALSE;
            m1 = b > 0 ? M_TRUE : M_FALSE;
        } else if (!rc && !n->semi_in) {
            m0 = before->total > 0 ? M_TRUE : M_FALSE;
            m1 = after->total > 0 ? M_TRUE : M_FALSE;
        } else if (!rc) {
            int64_t cnt = 0;
            if (!is_null_key(&lv))
                rc = get_count(s, c, &lv, &cnt, err, errsz);
            m0 = in_match(before, is_null_key(&lv), cnt);
            m1 = in_match(after, is_null_key(&lv), cnt + delta_count(d, nd, &lv));
        }
        if (!rc && m0 != m1 && ((rc = emit(n, l, m0, -ln, out)) || (rc = emit(n, l, m1, ln, out))))
            ss_seterr(err, errsz, rc, "out of memory");
        ss_row_free(l);
    }
    sqlite3_reset(q);
    ss_buf_free(&lv);
    return rc;
}

/* A right delta d[0..nd) of one key c. */
static int apply_right_key(ss_op_t *op, sent_t *d, size_t nd, ss_zset_t *out, char *err, size_t errsz)
{
    semijoin_t *s = op->impl;
    const ss_plan_node_t *n = op->node;
    const ss_buf_t *c = &d[0].c;
    summary_t before, after;
    rrows_t rr = {0};
    int rc = get_summary(s, c, &before, err, errsz);
    after = before;
    for (size_t i = 0; i < nd; i++) {
        after.total += d[i].w;
        after.nulls += n->semi_in && is_null_key(&d[i].v) ? d[i].w : 0;
    }
    int all = n->pred || (before.total > 0) != (after.total > 0) || (before.nulls > 0) != (after.nulls > 0);
    if (!rc && n->pred)
        rc = load_right(s, c, &rr, err, errsz);
    if (!rc && all) {
        rc = reemit(op, c, NULL, d, nd, &before, &after, &rr, out, err, errsz);
    } else if (!rc && n->semi_in) { /* only the values whose presence may flip */
        for (size_t i = 0; i < nd && !rc; i++) {
            int seen = 0;
            for (size_t k = 0; k < i && !seen; k++)
                seen = buf_eq(&d[k].v, &d[i].v);
            if (!seen && !is_null_key(&d[i].v))
                rc = reemit(op, c, &d[i].v, d, nd, &before, &after, &rr, out, err, errsz);
        }
    }
    for (size_t i = 0; i < nd && !rc; i++)
        rc = add_state(s, 1, c, &d[i].v, n->pred ? d[i].row : NULL, d[i].w, err, errsz);
    if (!rc)
        rc = put_summary(s, c, &after, err, errsz);
    rrows_free(&rr);
    return rc;
}

static int sent_cmp(const void *a, const void *b)
{
    const sent_t *x = a, *y = b;
    size_t n = SS_MIN(x->c.len, y->c.len);
    int c = n ? memcmp(x->c.data, y->c.data, n) : 0;
    return c ? c : x->c.len < y->c.len ? -1 : x->c.len > y->c.len;
}

static int semijoin_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                          char *err, size_t errsz)
{
    (void)ctx;
    semijoin_t *s = op->impl;
    const ss_plan_node_t *n = op->node;
    if (port < 0 || port > 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "semijoin (node %d) has no port %d", n->id, port);
    if (in->n == 0)
        return SS_OK;
    ss_zset_t z;
    ss_zset_init(&z);
    int rc = ss_state_zset_consolidated(in, &z);
    sent_t *e = calloc(z.n + 1, sizeof *e);
    if (!e)
        rc = SS_ERR_NOMEM;
    for (size_t i = 0; i < z.n && !rc; i++) {
        e[i].row = z.e[i].row;
        e[i].w = z.e[i].w;
        rc = entry_keys(n, s->ncorr, port, &e[i]);
    }
    if (rc)
        ss_seterr(err, errsz, rc, "semijoin keys");
    else
        qsort(e, z.n, sizeof *e, sent_cmp);
    if (!rc && port == 0)
        rc = apply_left(op, e, z.n, out, err, errsz);
    for (size_t i = 0; i < z.n && !rc && port == 1;) {
        size_t k = i + 1;
        while (k < z.n && sent_cmp(&e[i], &e[k]) == 0)
            k++;
        if (!is_null_key(&e[i].c)) /* a NULL key matches nothing */
            rc = apply_right_key(op, e + i, k - i, out, err, errsz);
        i = k;
    }
    for (size_t i = 0; e && i < z.n; i++) {
        ss_buf_free(&e[i].c);
        ss_buf_free(&e[i].v);
    }
    free(e);
    ss_zset_destroy(&z);
    if (rc)
        ss_errprefix(err, errsz, "semijoin (node %d)", n->id);
    return rc;
}

static int semijoin_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    semijoin_t *s = op->impl;
    const ss_plan_node_t *n = op->node;
    sqlite3_stmt *q = ss_state_stmt(s->st, S_SNAP, err, errsz, "SELECT c, v, row, n FROM %s_l ORDER BY c",
                                    s->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_buf_t c = SS_BUF_INIT, v = SS_BUF_INIT, lastc = SS_BUF_INIT;
    rrows_t rr = {0};
    int rc = SS_OK, first = 1;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        ss_buf_reset(&c);
        ss_buf_reset(&v);
        const void *pc = sqlite3_column_blob(q, 0), *pv = sqlite3_column_blob(q, 1);
        rc = ss_buf_append(&c, pc ? pc : "", (size_t)sqlite3_column_bytes(q, 0));
        if (!rc)
            rc = ss_buf_append(&v, pv ? pv : "", (size_t)sqlite3_column_bytes(q, 1));
        ss_row_t *l = NULL;
        if (!rc)
            rc = ss_state_column_row(q, 2, &l);
        if (!rc && n->pred && (first || !buf_eq(&c, &lastc))) {
            rrows_free(&rr);
            ss_buf_reset(&lastc);
            rc = ss_buf_append(&lastc, c.data ? c.data : "", c.len);
            if (!rc)
                rc = load_right(s, &c, &rr, err, errsz);
            first = 0;
        }
        int m = M_FALSE;
        if (!rc)
            rc = match_now(s, n, &c, &v, l, &rr, &m, err, errsz);
        if (!rc)
            rc = emit(n, l, m, sqlite3_column_int64(q, 3), out);
        ss_row_free(l);
    }
    sqlite3_reset(q);
    rrows_free(&rr);
    ss_buf_free(&c);
    ss_buf_free(&v);
    ss_buf_free(&lastc);
    return rc ? ss_seterr(err, errsz, rc, "semijoin (node %d) snapshot", n->id) : SS_OK;
}

static const char *semijoin_strategy(const ss_op_t *op)
{
    return op->node->pred ? "non-linear: both sides indexed by key in SQLite; a change re-evaluates the residual "
                            "over its key's rows and emits rows whose match flips"
                          : "non-linear: both sides indexed by key in SQLite with per-key counts; emits rows "
                            "whose match flips";
}

static void semijoin_destroy(ss_op_t *op)
{
    semijoin_t *s = op->impl;
    if (!s)
        return;
    ss_state_destroy(s->st);
    ss_buf_free(&s->rb);
    free(s);
    op->impl = NULL;
}

static const ss_op_vtable_t semijoin_vt = {
    "semijoin", SS_OPK_NONLINEAR, semijoin_init, semijoin_apply, semijoin_snapshot, semijoin_strategy,
    semijoin_destroy, NULL,
};

int ss_op_semijoin_init(ss_op_t *op, char *err, size_t errsz)
{
    semijoin_t *s = calloc(1, sizeof *s);
    if (!s)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    op->vt = &semijoin_vt;
    op->impl = s;
    return SS_OK;
}
