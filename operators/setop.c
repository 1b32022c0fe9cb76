/*
 * setop.c — SS_PN_SETOP: UNION, EXCEPT [ALL] and INTERSECT [ALL] of in[0]
 * (port 0) and in[1] (port 1), with PostgreSQL's multiset semantics for a row
 * present l times on the left and r times on the right:
 *   UNION         1 if l + r > 0          INTERSECT      1 if l > 0 and r > 0
 *   EXCEPT        1 if l > 0 and r = 0    INTERSECT ALL  min(l, r)
 *   EXCEPT ALL    max(l - r, 0)           (UNION ALL is the linear union operator)
 * Rows are compared as SQL DISTINCT does: NULLs are equal, 2 equals 2.0 and 3.00 equals 3 (the
 * planner casts both inputs to the columns' unified types).
 *
 * Non-linear: state st_<id>_c(k = the row's normalised encoding, l, r) holds both
 * integrated counts of every row seen (a row is deleted when both reach 0). A
 * delta entry (row, w) on a port updates that count and emits
 * f(l', r') - f(l, r) copies of the row: only rows whose output multiplicity
 * changes produce output. The row emitted is the normalised one with integral
 * values of REAL columns given back as REAL, so it never depends on which
 * input (or which spelling, 2 or 2.0) came first.
 */
#include "ss_op.h"
#include "ss_decimal.h"
#include "ss_state.h"

#include <stdlib.h>
#include <string.h>

enum { S_GET, S_PUT, S_DEL, S_SNAP, S_N };

typedef struct setop {
    ss_state_t *st;
    int *cols;   /* 0 .. n-1: every column is part of the key */
    ss_buf_t key;
} setop_t;

static int setop_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    setop_t *s = op->impl;
    const ss_plan_node_t *n = op->node;
    if (!n->schema || n->setop == SS_SETOP_NONE || n->setop == SS_SETOP_UNION_ALL)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "setop node %d: missing schema or operation", n->id);
    if (!s->cols && !(s->cols = calloc((size_t)n->schema->n + 1, sizeof *s->cols)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n->schema->n; i++)
        s->cols[i] = i;
    if (!s->st && !(s->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    return ss_state_exec(s->st, err, errsz,
                         "CREATE TABLE IF NOT EXISTS %s_c(k BLOB PRIMARY KEY, l INTEGER NOT NULL, "
                         "r INTEGER NOT NULL) WITHOUT ROWID",
                         s->st->prefix);
}

/* Output multiplicity of a row present l times on the left and r times on the right. */
static int64_t mult(ss_setop_t op, int64_t l, int64_t r)
{
    l = l > 0 ? l : 0;
    r = r > 0 ? r : 0;
    switch (op) {
    case SS_SETOP_UNION: return l + r > 0;
    case SS_SETOP_INTERSECT: return l > 0 && r > 0;
    case SS_SETOP_INTERSECT_ALL: return l < r ? l : r;
    case SS_SETOP_EXCEPT: return l > 0 && r == 0;
    case SS_SETOP_EXCEPT_ALL: return l > r ? l - r : 0;
    default: return 0;
    }
}

/* The key of a row: NUMERIC values without trailing fractional zeros (3.00 equals 3, as in SQL),
 * then the normalised encoding (integral REALs as INT). */
static int row_key(const ss_plan_node_t *n, const int *cols, const ss_row_t *r, ss_buf_t *out)
{
    int has_num = 0;
    for (int i = 0; i < r->n; i++)
        has_num |= r->v[i].t == SS_NUM && memchr(r->v[i].u.str.s, '.', r->v[i].u.str.n);
    if (!has_num)
        return ss_state_encode_cols(r, cols, n->schema->n, 1, out, NULL);
    ss_row_t *c = ss_row_copy(r);
    if (!c)
        return SS_ERR_NOMEM;
    for (int i = 0; i < c->n; i++) {
        ss_value_t *v = &c->v[i];
        if (v->t != SS_NUM || !memchr(v->u.str.s, '.', v->u.str.n))
            continue;
        while (v->u.str.n && v->u.str.s[v->u.str.n - 1] == '0')
            v->u.str.n--;
        if (v->u.str.n && v->u.str.s[v->u.str.n - 1] == '.')
            v->u.str.n--;
        if (v->u.str.n == 2 && !memcmp(v->u.str.s, "-0", 2)) /* -0.00 */
            memcpy(v->u.str.s, "0", 2), v->u.str.n = 1;
        v->u.str.s[v->u.str.n] = 0;
    }
    int rc = ss_state_encode_cols(c, cols, n->schema->n, 1, out, NULL);
    ss_row_free(c);
    return rc;
}

/* The row a key stands for: integral REALs were encoded as INT; REAL columns get them back. */
static int key_row(const ss_plan_node_t *n, const void *k, size_t len, ss_row_t **out)
{
    int rc = ss_row_decode(k, len, out);
    for (int i = 0; !rc && i < (*out)->n && i < n->schema->n; i++) {
        ss_value_t *v = &(*out)->v[i];
        if (n->schema->types[i] == SS_COL_REAL && v->t == SS_INT)
            *v = ss_val_real((double)v->u.i);
        int scale = ss_typmod_scale(n->schema->typmod[i]);
        if (v->t == SS_NUM && scale > 0) { /* NUMERIC(p,s): its scale back (2.5 -> 2.50) */
            ss_dec_t d;
            ss_buf_t b = SS_BUF_INIT;
            if ((rc = ss_dec_parse(v->u.str.s, v->u.str.n, &d, NULL, 0)) || (rc = ss_dec_round(&d, scale)) ||
                (rc = ss_dec_to_text(&d, &b))) {
                ss_buf_free(&b);
                break;
            }
            ss_value_t nv = *v;
            nv.u.str.s = (char *)ss_buf_cstr(&b);
            nv.u.str.n = b.len;
            rc = ss_row_set(*out, i, &nv);
            ss_buf_free(&b);
        }
    }
    return rc;
}

/* Adds w to the count of `port` for the current key; *l, *r get the counts before. */
static int count_add(setop_t *s, int port, int64_t w, int64_t *l, int64_t *r, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(s->st, S_GET, err, errsz, "SELECT l, r FROM %s_c WHERE k = ?1", s->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, &s->key);
    int sr = sqlite3_step(q);
    *l = sr == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    *r = sr == SQLITE_ROW ? sqlite3_column_int64(q, 1) : 0;
    sqlite3_reset(q);
    if (sr != SQLITE_ROW && sr != SQLITE_DONE)
        return ss_state_sqlerr(s->st->db, err, errsz, "setop lookup");
    int64_t nl = *l + (port ? 0 : w), nr = *r + (port ? w : 0);
    if (nl == 0 && nr == 0)
        q = ss_state_stmt(s->st, S_DEL, err, errsz, "DELETE FROM %s_c WHERE k = ?1", s->st->prefix);
    else
        q = ss_state_stmt(s->st, S_PUT, err, errsz, "INSERT OR REPLACE INTO %s_c(k, l, r) VALUES(?1, ?2, ?3)",
                          s->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, &s->key);
    if (nl || nr) {
        sqlite3_bind_int64(q, 2, nl);
        sqlite3_bind_int64(q, 3, nr);
    }
    return ss_state_run(s->st, q, err, errsz);
}

static int setop_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                       char *err, size_t errsz)
{
    (void)ctx;
    setop_t *s = op->impl;
    const ss_plan_node_t *n = op->node;
    if (port < 0 || port > 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "setop (node %d) has no port %d", n->id, port);
    ss_zset_t z;
    ss_zset_init(&z);
    int rc = ss_state_zset_consolidated(in, &z);
    for (size_t i = 0; i < z.n && !rc; i++) {
        int64_t l, r;
        ss_buf_reset(&s->key);
        if (z.e[i].row->n != n->schema->n) {
            rc = ss_seterr(err, errsz, SS_ERR_INVALID, "row of %d columns, expected %d", z.e[i].row->n,
                           n->schema->n);
            break;
        }
        rc = row_key(n, s->cols, z.e[i].row, &s->key);
        if (!rc)
            rc = count_add(s, port, z.e[i].w, &l, &r, err, errsz);
        int64_t d = 0;
        if (!rc)
            d = mult(n->setop, l + (port ? 0 : z.e[i].w), r + (port ? z.e[i].w : 0)) - mult(n->setop, l, r);
        ss_row_t *row = NULL;
        if (!rc && d && !(rc = key_row(n, s->key.data, s->key.len, &row)))
            rc = ss_zset_add(out, row, d);
    }
    ss_zset_destroy(&z);
    if (rc)
        ss_errprefix(err, errsz, "setop (node %d)", n->id);
    return rc;
}

static int setop_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    setop_t *s = op->impl;
    sqlite3_stmt *q = ss_state_stmt(s->st, S_SNAP, err, errsz, "SELECT k, l, r FROM %s_c", s->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    int rc = SS_OK, sr;
    while (!rc && (sr = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t m = mult(op->node->setop, sqlite3_column_int64(q, 1), sqlite3_column_int64(q, 2));
        ss_row_t *row = NULL;
        if (m && !(rc = key_row(op->node, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0), &row)))
            rc = ss_zset_add(out, row, m);
    }
    sqlite3_reset(q);
    return rc ? ss_seterr(err, errsz, rc, "setop (node %d): bad state row", op->node->id) : SS_OK;
}

static const char *setop_strategy(const ss_op_t *op)
{
    (void)op;
    return "non-linear: both inputs' count per distinct row in SQLite; emits the change of each touched "
           "row's output multiplicity";
}

static void setop_destroy(ss_op_t *op)
{
    setop_t *s = op->impl;
    if (!s)
        return;
    ss_state_destroy(s->st);
    ss_buf_free(&s->key);
    free(s->cols);
    free(s);
    op->impl = NULL;
}

static const ss_op_vtable_t setop_vt = {
    "setop", SS_OPK_NONLINEAR, setop_init, setop_apply, setop_snapshot, setop_strategy, setop_destroy, NULL,
};

int ss_op_setop_init(ss_op_t *op, char *err, size_t errsz)
{
    setop_t *s = calloc(1, sizeof *s);
    if (!s)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    op->vt = &setop_vt;
    op->impl = s;
    return SS_OK;
}
