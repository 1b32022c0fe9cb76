/*
 * group.c — SS_PN_GROUP: GROUP BY group_cols with COUNT(*), COUNT, SUM, AVG,
 * MIN, MAX, and their DISTINCT forms. Output row = group columns, then one
 * column per aggregate.
 *
 * Non-linear; state in SQLite, nothing per group in memory:
 *   st_<id>_g(g = encoded group values, cnt = Σ weights, acc = accumulators
 *             as an encoded row, out = the output row last emitted)
 *   st_<id>_m(a = aggregate index, g, v = value, n = count)  — per-group value
 *             multisets, kept for MIN/MAX (correct under deletes) and DISTINCT.
 * Also BOOL_AND / BOOL_OR (from the sum of 0/1 values), VAR / STDDEV (from Σx and, in the next
 * aggregate, an SS_AGG_SUMSQ Σx²), and the ordered lists STRING_AGG / ARRAY_AGG / JSON_AGG (their
 * elements are a value multiset keyed by the aggregate's order, agg_list.c, re-read in order
 * when the group changes). FILTER (WHERE ..) keeps a row from one aggregate.
 * Accumulators per aggregate (sumacc_t): the number of non-NULL inputs, an
 * exact 128-bit sum of the INT inputs, the exact sum of the finite REAL inputs
 * as a list of non-overlapping partials (Shewchuk's algorithm, as Python's
 * math.fsum), and counts of infinite inputs. Sums are therefore exact under
 * inserts and deletes: SUM/AVG do not depend on history or batching (insert
 * 1e20, insert 1.0, delete 1e20 gives 1.0). SUM is INT while every input is an
 * INT and the exact sum fits 64 bits, else REAL (the correctly rounded exact
 * sum) — the same rule as INT arithmetic, which overflows to REAL; never a
 * wrapped value. +inf and -inf together give NULL (no NaN is ever produced).
 * DISTINCT aggregates feed the accumulators only when a value's count crosses 0. For every group touched by
 * a batch the new output row is computed and -old +new emitted when it changed;
 * a group whose count reaches 0 disappears. Without GROUP BY there is always
 * exactly one output row (COUNT 0 and NULL sums when empty, as in SQL), emitted
 * on the first apply (an empty tick included; the engine applies every new
 * operator once, so the row exists before any input arrives).
 */
#include "ss_decimal.h"
#include "ss_op.h"
#include "ss_state.h"
#include "ss_winstate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { S_GGET, S_GPUT, S_GDEL, S_MADD, S_MDEL, S_MMIN, S_MMAX, S_SNAP, S_LIST, S_MDROP, S_N };

#define MAXP 48  /* partials of an exact double sum: at most ~40 for the double range */

typedef struct sumacc {   /* one aggregate's accumulators */
    int64_t nn;           /* non-NULL inputs */
    int64_t nreal;        /* non-INT inputs */
    int64_t npinf, nninf; /* +inf / -inf inputs */
    __int128 isum;        /* exact sum of the INT inputs */
    int np;
    double p[MAXP];       /* exact sum of the finite REAL inputs: non-overlapping partials */
    int64_t nnum;         /* NUMERIC inputs */
    ss_dec_t dsum;        /* their exact sum (owned) */
} sumacc_t;

/* encoded fields before the partials: nn, nreal, npinf, nninf, isum hi, isum lo, np, nnum, dsum */
#define ACC_FIXED 9
#define ACC_INTS 8

typedef struct group {
    ss_state_t *st;
    int need_m;          /* some aggregate keeps a value multiset */
    ss_buf_t kb, ab, ob;
    ss_winstate_t ws;    /* GROUP BY window_start, window_end: windows' state dropped at close (winstate.c) */
} group_t;

typedef struct item {     /* a consolidated input entry, tagged with its group key */
    ss_buf_t key;
    const ss_row_t *row;
    int64_t w;
} item_t;

typedef struct gstate {   /* a group's record while it is being updated */
    int64_t cnt;
    sumacc_t *acc;        /* per aggregate */
    ss_row_t *old;        /* output row last emitted, or NULL */
    int exists;
    /* MIN/MAX shortcuts: while no value left a multiset in this batch, the new
     * extreme is the old one or the best value that entered it */
    int *lost;            /* per aggregate: some value's count dropped to 0 */
    ss_row_t *cand;       /* per aggregate: best value that entered (NULL = none) */
} gstate_t;

/* ---- exact sums ---- */

/* Adds x to the partials exactly (Shewchuk). */
static void partials_add(sumacc_t *a, double x)
{
    int i = 0;
    for (int j = 0; j < a->np; j++) {
        double y = a->p[j];
        if (fabs(x) < fabs(y)) {
            double t = x;
            x = y;
            y = t;
        }
        double hi = x + y, lo = y - (hi - x);
        if (lo != 0.0)
            a->p[i++] = lo;
        x = hi;
    }
    if (i < MAXP)
        a->p[i++] = x;
    a->np = i;
}

/* The correctly rounded value of the partials (Python's fsum final step); consumes them. */
static double partials_round(double *p, int np)
{
    if (np == 0)
        return 0.0;
    double hi = p[--np], lo = 0.0;
    while (np > 0) {
        double x = hi, y = p[--np];
        hi = x + y;
        double yr = hi - x;
        lo = y - yr;
        if (lo != 0.0)
            break;
    }
    if (np > 0 && ((lo < 0 && p[np - 1] < 0) || (lo > 0 && p[np - 1] > 0))) {
        double y = lo * 2, x = hi + y, yr = x - hi;
        if (y == yr)
            hi = x;
    }
    return hi;
}

/* The exact sum of every input as the nearest double; *is_nan when +inf and -inf met. */
static double sum_real(const sumacc_t *a, int *is_nan)
{
    *is_nan = a->npinf > 0 && a->nninf > 0;
    if (a->npinf > 0)
        return INFINITY;
    if (a->nninf > 0)
        return -INFINITY;
    sumacc_t t = *a;
    /* the 128-bit INT sum enters as exact 32-bit chunks */
    unsigned __int128 u = a->isum < 0 ? -(unsigned __int128)a->isum : (unsigned __int128)a->isum;
    for (int k = 0; k < 4 && u; k++, u >>= 32)
        partials_add(&t, (a->isum < 0 ? -1.0 : 1.0) * ldexp((double)(uint32_t)u, 32 * k));
    return partials_round(t.p, t.np);
}

/* dsum += text * w, exactly. */
static int dec_add(sumacc_t *s, const char *text, size_t n, int64_t w, char *err, size_t errsz)
{
    ss_dec_t x = SS_DEC_INIT, m = SS_DEC_INIT, xw = SS_DEC_INIT, sum = SS_DEC_INIT;
    int rc = ss_dec_parse(text, n, &x, err, errsz);
    if (!rc)
        rc = ss_dec_from_i64(w, &m);
    if (!rc)
        rc = ss_dec_mul(&x, &m, &xw, err, errsz);
    if (!rc)
        rc = ss_dec_add(&s->dsum, &xw, &sum, err, errsz);
    if (!rc) {
        ss_dec_free(&s->dsum);
        s->dsum = sum;
        sum = (ss_dec_t)SS_DEC_INIT;
    }
    ss_dec_free(&x);
    ss_dec_free(&m);
    ss_dec_free(&xw);
    ss_dec_free(&sum);
    return rc;
}

static int acc_add(gstate_t *gs, int a, const ss_value_t *v, int64_t w, char *err, size_t errsz)
{
    sumacc_t *s = &gs->acc[a];
    s->nn += w;
    if (v->t == SS_INT) {
        s->isum += (__int128)v->u.i * w;
        return SS_OK;
    }
    if (v->t == SS_NUM) { /* NUMERIC: an exact decimal sum */
        s->nnum += w;
        return dec_add(s, v->u.str.s, v->u.str.n, w, err, errsz);
    }
    if (v->t != SS_REAL && !ss_vtype_has_str(v->t))
        return SS_OK; /* MIN/MAX of times and intervals: no sum (their payload is no text to strtod) */
    s->nreal += w;
    double x = v->t == SS_REAL ? v->u.r : strtod(v->u.str.s, NULL);
    if (isinf(x))
        *(x > 0 ? &s->npinf : &s->nninf) += w;
    else if (!isnan(x)) { /* w copies: x * w exactly, as a product and its rounding error */
        double wd = (double)w, hi = x * wd, lo = fma(x, wd, -hi);
        partials_add(s, hi);
        if (lo != 0.0)
            partials_add(s, lo);
    }
    return SS_OK;
}
static int is_list(ss_agg_fn_t f) { return f == SS_AGG_STRING_AGG || f == SS_AGG_ARRAY_AGG || f == SS_AGG_JSON_AGG; }

static int uses_m(const ss_plan_agg_t *a)
{
    return a->arg && (a->distinct || a->fn == SS_AGG_MIN || a->fn == SS_AGG_MAX || is_list(a->fn));
}

static int group_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    group_t *g = op->impl;
    const ss_plan_node_t *n = op->node;
    if (!n->schema || n->schema->n != n->ngroup + n->naggs)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "group node %d: schema must have %d columns", n->id,
                         n->ngroup + n->naggs);
    if (!g->st && !(g->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    g->need_m = 0;
    for (int i = 0; i < n->naggs; i++)
        g->need_m |= uses_m(&n->aggs[i]);
    const char *p = g->st->prefix;
    int rc = ss_state_exec(g->st, err, errsz,
                           "CREATE TABLE IF NOT EXISTS %s_g(g BLOB PRIMARY KEY, cnt INTEGER NOT NULL, "
                           "acc BLOB, out BLOB) WITHOUT ROWID",
                           p);
    if (!rc && g->need_m)
        rc = ss_state_exec(g->st, err, errsz,
                           "CREATE TABLE IF NOT EXISTS %s_m(a INTEGER, g BLOB, v, n INTEGER NOT NULL, x, "
                           "PRIMARY KEY(a, g, v)) WITHOUT ROWID",
                           p);
    if (!rc)
        rc = ss_winstate_init(&g->ws, n, ctx->db, err, errsz);
    return rc;
}

/* ---- group records ---- */

/* Decodes the accumulators of naggs aggregates from an encoded row. */
static int acc_decode(const ss_row_t *r, sumacc_t *acc, int naggs)
{
    int at = 0;
    for (int i = 0; i < naggs; i++) {
        sumacc_t *s = &acc[i];
        if (at + ACC_FIXED > r->n)
            return SS_ERR_INVALID;
        const ss_value_t *v = r->v + at;
        for (int k = 0; k < ACC_INTS; k++)
            if (v[k].t != SS_INT)
                return SS_ERR_INVALID;
        s->nnum = v[7].u.i;
        char e2[128];
        if (v[8].t != SS_NULL && ss_dec_parse(v[8].u.str.s, v[8].u.str.n, &s->dsum, e2, sizeof e2))
            return SS_ERR_INVALID;
        s->nn = v[0].u.i;
        s->nreal = v[1].u.i;
        s->npinf = v[2].u.i;
        s->nninf = v[3].u.i;
        s->isum = (__int128)((unsigned __int128)(uint64_t)v[4].u.i << 64 | (uint64_t)v[5].u.i);
        s->np = (int)v[6].u.i;
        at += ACC_FIXED;
        if (s->np < 0 || s->np > MAXP || at + s->np > r->n)
            return SS_ERR_INVALID;
        for (int k = 0; k < s->np; k++, at++) {
            if (r->v[at].t != SS_REAL)
                return SS_ERR_INVALID;
            s->p[k] = r->v[at].u.r;
        }
    }
    return at == r->n ? SS_OK : SS_ERR_INVALID;
}

static ss_row_t *acc_encode(const sumacc_t *acc, int naggs)
{
    int n = 0;
    for (int i = 0; i < naggs; i++)
        n += ACC_FIXED + acc[i].np;
    ss_row_t *r = ss_row_new(n);
    if (!r)
        return NULL;
    int at = 0;
    for (int i = 0; i < naggs; i++) {
        const sumacc_t *s = &acc[i];
        unsigned __int128 u = (unsigned __int128)s->isum;
        int64_t f[ACC_INTS] = {s->nn, s->nreal, s->npinf, s->nninf, (int64_t)(uint64_t)(u >> 64),
                               (int64_t)(uint64_t)u, s->np, s->nnum};
        for (int k = 0; k < ACC_INTS; k++)
            r->v[at++] = ss_val_int(f[k]);
        ss_buf_t t = SS_BUF_INIT;
        if (s->dsum.n && !ss_dec_to_text(&s->dsum, &t)) {
            ss_value_t nv = ss_val_num_ref(t.data, t.len);
            ss_row_set(r, at, &nv);
        }
        ss_buf_free(&t);
        at++;
        for (int k = 0; k < s->np; k++)
            r->v[at++] = ss_val_real(s->p[k]);
    }
    return r;
}

static void acc_clear(sumacc_t *acc, int naggs)
{
    for (int i = 0; i < naggs; i++)
        ss_dec_free(&acc[i].dsum);
    memset(acc, 0, sizeof *acc * (size_t)naggs);
}

static int load_group(group_t *g, int naggs, const ss_buf_t *key, gstate_t *gs, char *err, size_t errsz)
{
    acc_clear(gs->acc, naggs);
    gs->cnt = 0;
    gs->old = NULL;
    gs->exists = 0;
    memset(gs->lost, 0, sizeof(int) * (size_t)naggs);
    for (int i = 0; i < naggs; i++) {
        ss_value_t nul = ss_val_null();
        ss_row_set(gs->cand, i, &nul);
    }
    sqlite3_stmt *q = ss_state_stmt(g->st, S_GGET, err, errsz, "SELECT cnt, acc, out FROM %s_g WHERE g = ?1",
                                    g->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, key);
    int sr = sqlite3_step(q), rc = SS_OK;
    if (sr == SQLITE_ROW) {
        gs->exists = 1;
        gs->cnt = sqlite3_column_int64(q, 0);
        ss_row_t *acc = NULL;
        rc = ss_state_column_row(q, 1, &acc);
        if (!rc)
            rc = acc_decode(acc, gs->acc, naggs);
        ss_row_free(acc);
        if (!rc && sqlite3_column_type(q, 2) != SQLITE_NULL)
            rc = ss_state_column_row(q, 2, &gs->old);
        if (rc)
            ss_seterr(err, errsz, rc, "group state of node %d: bad record", g->st->id);
    } else if (sr != SQLITE_DONE)
        rc = ss_state_sqlerr(g->st->db, err, errsz, "group lookup");
    sqlite3_reset(q);
    return rc;
}

static int save_group(group_t *g, int naggs, const ss_buf_t *key, const gstate_t *gs, const ss_row_t *out,
                      char *err, size_t errsz)
{
    ss_row_t *acc = acc_encode(gs->acc, naggs);
    if (!acc)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    ss_buf_reset(&g->ab);
    int rc = ss_row_encode(acc, &g->ab);
    ss_row_free(acc);
    ss_buf_reset(&g->ob);
    if (!rc && out)
        rc = ss_row_encode(out, &g->ob);
    if (rc)
        return ss_seterr(err, errsz, rc, "out of memory");
    sqlite3_stmt *s = ss_state_stmt(g->st, S_GPUT, err, errsz,
                                    "INSERT OR REPLACE INTO %s_g(g, cnt, acc, out) VALUES(?1, ?2, ?3, ?4)",
                                    g->st->prefix);
    if (!s)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(s, 1, key);
    sqlite3_bind_int64(s, 2, gs->cnt);
    ss_state_bind_buf(s, 3, &g->ab);
    if (out)
        ss_state_bind_buf(s, 4, &g->ob);
    return ss_state_run(g->st, s, err, errsz);
}

static int delete_group(group_t *g, const ss_buf_t *key, char *err, size_t errsz)
{
    sqlite3_stmt *s = ss_state_stmt(g->st, S_GDEL, err, errsz, "DELETE FROM %s_g WHERE g = ?1", g->st->prefix);
    if (!s)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(s, 1, key);
    return ss_state_run(g->st, s, err, errsz);
}

/* Adds w to the count of value v in aggregate a's multiset; *oldn and *newn get the counts before and after. */
/* Binds a multiset value: itself, or for a NUMERIC or a time value its sort key (SQLite compares
 * it as bytes, in the type's order, and 1.5 and 1.50 are one value), the value then going to column x. */
static int mval_keyed(const ss_value_t *v) { return v->t == SS_NUM || ss_vtype_is_time(v->t) || v->t == SS_IVL; }

static int bind_mval(group_t *g, sqlite3_stmt *s, int idx, const ss_value_t *v)
{
    if (!mval_keyed(v))
        return ss_state_bind_value(s, idx, v);
    ss_buf_reset(&g->kb);
    if (ss_state_sortkey(&g->kb, v, 0))
        return SS_ERR_NOMEM;
    return ss_state_bind_buf(s, idx, &g->kb);
}

/* Adds w to the count of value v (or of the list element key elem, when given) in aggregate a's
 * multiset; *oldn and *newn get the counts before and after. */
static int mset_add(group_t *g, int a, const ss_buf_t *key, const ss_value_t *v, const ss_buf_t *elem, int64_t w,
                    int64_t *oldn, int64_t *newn, char *err, size_t errsz)
{
    sqlite3_stmt *s = ss_state_stmt(g->st, S_MADD, err, errsz,
                                    "INSERT INTO %s_m(a, g, v, n, x) VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(a, g, v) "
                                    "DO UPDATE SET n = n + excluded.n RETURNING n",
                                    g->st->prefix);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_int(s, 1, a);
    ss_state_bind_buf(s, 2, key);
    if (elem)
        ss_state_bind_buf(s, 3, elem);
    else if (bind_mval(g, s, 3, v))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    sqlite3_bind_int64(s, 4, w);
    if (!elem && mval_keyed(v) && ss_state_bind_value(s, 5, v))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        return ss_state_sqlerr(g->st->db, err, errsz, "group multiset update");
    }
    *newn = sqlite3_column_int64(s, 0);
    *oldn = *newn - w;
    int rc = ss_state_run(g->st, s, err, errsz);
    if (rc || *newn != 0)
        return rc;
    s = ss_state_stmt(g->st, S_MDEL, err, errsz, "DELETE FROM %s_m WHERE a = ?1 AND g = ?2 AND v = ?3",
                      g->st->prefix);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_int(s, 1, a);
    ss_state_bind_buf(s, 2, key);
    if (elem)
        ss_state_bind_buf(s, 3, elem);
    else if (bind_mval(g, s, 3, v))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    return ss_state_run(g->st, s, err, errsz);
}

/* FILTER (WHERE ..) of aggregate ag on row r: 1 when the row counts. */
static int filter_ok(const ss_plan_agg_t *ag, const ss_row_t *r, int *ok, char *err, size_t errsz)
{
    *ok = 1;
    if (!ag->filter)
        return SS_OK;
    ss_value_t v;
    char *owned = NULL;
    int rc = ss_expr_eval(ag->filter, r, &v, &owned, err, errsz);
    *ok = !rc && ss_val_truthy(&v);
    free(owned);
    return rc;
}

/* A list aggregate's element key for value v of row r (agg_list.c). */
static int list_elem(const ss_plan_agg_t *ag, const ss_row_t *r, const ss_value_t *v, ss_buf_t *out, char *err,
                     size_t errsz)
{
    ss_value_t ord[16];
    char *owned[16] = {0};
    int desc[16], n = ag->norder < 16 ? ag->norder : 16, rc = SS_OK;
    for (int i = 0; i < n && !rc; i++) {
        rc = ss_expr_eval(ag->order[i].expr, r, &ord[i], &owned[i], err, errsz);
        desc[i] = ag->order[i].desc;
    }
    ss_buf_reset(out);
    if (!rc && (rc = ss_state_list_elem(v, ord, desc, n, out)))
        ss_seterr(err, errsz, rc, "out of memory");
    for (int i = 0; i < n; i++)
        free(owned[i]);
    return rc;
}

/* Folds one input entry into the group record and multisets. */
static int add_entry(ss_op_t *op, const item_t *it, gstate_t *gs, char *err, size_t errsz)
{
    group_t *g = op->impl;
    const ss_plan_node_t *n = op->node;
    gs->cnt += it->w;
    for (int a = 0; a < n->naggs; a++) {
        const ss_plan_agg_t *ag = &n->aggs[a];
        int ok = 1;
        if (!ag->arg)
            continue; /* COUNT(*) uses cnt */
        ss_value_t v;
        char *owned = NULL;
        int rc = filter_ok(ag, it->row, &ok, err, errsz);
        if (rc)
            return rc;
        if (!ok)
            continue; /* this aggregate does not see the row */
        rc = ss_expr_eval(ag->arg, it->row, &v, &owned, err, errsz);
        if (!rc && is_list(ag->fn)) { /* NULLs are elements too (ARRAY_AGG shows them) */
            int64_t o, nn;
            if (!(rc = list_elem(ag, it->row, &v, &g->kb, err, errsz)))
                rc = mset_add(g, a, &it->key, &v, &g->kb, it->w, &o, &nn, err, errsz);
        } else if (!rc && v.t != SS_NULL) {
            int64_t o = 0, nn = 0;
            if (uses_m(ag))
                rc = mset_add(g, a, &it->key, &v, NULL, it->w, &o, &nn, err, errsz);
            if (!rc && (ag->fn == SS_AGG_MIN || ag->fn == SS_AGG_MAX)) {
                const ss_value_t *c = &gs->cand->v[a];
                int better = c->t == SS_NULL || (ag->fn == SS_AGG_MIN ? ss_val_cmp(&v, c) < 0 : ss_val_cmp(&v, c) > 0);
                if (o > 0 && nn <= 0)
                    gs->lost[a] = 1;
                else if (o <= 0 && nn > 0 && better && ss_row_set(gs->cand, a, &v))
                    rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            }
            if (!rc && !ag->distinct)
                rc = acc_add(gs, a, &v, it->w, err, errsz);
            else if (!rc && (o > 0) != (nn > 0))
                rc = acc_add(gs, a, &v, nn > 0 ? 1 : -1, err, errsz);
        }
        free(owned);
        if (rc)
            return rc;
    }
    return SS_OK;
}

static int min_max(group_t *g, int a, const ss_buf_t *key, int max, ss_row_t *r, int col, ss_coltype_t t,
                   char *err, size_t errsz)
{
    sqlite3_stmt *q = max ? ss_state_stmt(g->st, S_MMAX, err, errsz,
                                          "SELECT v, x FROM %s_m WHERE a = ?1 AND g = ?2 AND n > 0 "
                                          "ORDER BY v DESC LIMIT 1", g->st->prefix)
                          : ss_state_stmt(g->st, S_MMIN, err, errsz,
                                          "SELECT v, x FROM %s_m WHERE a = ?1 AND g = ?2 AND n > 0 "
                                          "ORDER BY v LIMIT 1", g->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    sqlite3_bind_int(q, 1, a);
    ss_state_bind_buf(q, 2, key);
    int rc = SS_OK, sr = sqlite3_step(q);
    if (sr == SQLITE_ROW) {
        ss_value_t v = ss_state_column_value(q, 0);
        char *own = NULL;
        if (sqlite3_column_type(q, 1) != SQLITE_NULL) { /* NUMERIC or a time value: v is its sort key */
            v = ss_state_column_value(q, 1);
            if (!ss_coltype_is_time(t) && t != SS_COL_INTERVAL)
                v = ss_val_num_ref(v.u.str.s, v.u.str.n);
            else if (ss_state_column_as(q, 1, t, &v, &own)) /* the time value's text, read as the column's type */
                rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "group min/max: bad stored value");
        }
        if (!rc)
            rc = ss_row_set(r, col, &v);
        free(own);
    } else if (sr != SQLITE_DONE)
        rc = ss_state_sqlerr(g->st->db, err, errsz, "group min/max");
    sqlite3_reset(q);
    return rc;
}

/* Column col of r = the NUMERIC d. */
static int set_numeric(ss_row_t *r, int col, const ss_dec_t *d)
{
    ss_buf_t t = SS_BUF_INIT;
    int rc = ss_dec_to_text(d, &t);
    if (!rc) {
        ss_value_t v = ss_val_num_ref(t.data ? t.data : "0", t.len);
        rc = ss_row_set(r, col, &v);
    }
    ss_buf_free(&t);
    return rc;
}

/* VAR / STDDEV from n, Σx and Σx²: exact in 128-bit integers for INT inputs (n·Σx² − (Σx)²),
 * else in long double. NULL without enough rows. */
static ss_value_t var_value(ss_agg_fn_t fn, int64_t n, int ints, __int128 s1i, __int128 s2i, long double s1,
                            long double s2)
{
    int samp = fn == SS_AGG_VAR_SAMP || fn == SS_AGG_STDDEV_SAMP;
    if (n < 1 || (samp && n < 2))
        return ss_val_null();
    long double num;
    const __int128 big = (__int128)1 << 120;
    if (ints && s2i >= 0 && s2i < big / n && s1i < ((__int128)1 << 60) && s1i > -((__int128)1 << 60))
        num = (long double)((__int128)n * s2i - s1i * s1i);
    else
        num = (long double)n * s2 - s1 * s1;
    long double var = num / ((long double)n * (long double)(samp ? n - 1 : n));
    if (var < 0)
        var = 0; /* rounding */
    return ss_val_real(fn == SS_AGG_STDDEV_SAMP || fn == SS_AGG_STDDEV_POP ? (double)sqrtl(var) : (double)var);
}

/* A list aggregate's value: its elements in order (agg_list.c). */
static int list_value(group_t *g, int a, const ss_buf_t *key, const ss_plan_agg_t *ag, ss_value_t *v, char **owned,
                      char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(g->st, S_LIST, err, errsz,
                                    "SELECT v, n FROM %s_m WHERE a = ?1 AND g = ?2 AND n > 0 ORDER BY v", g->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    sqlite3_bind_int(q, 1, a);
    ss_state_bind_buf(q, 2, key);
    int kind = ag->fn == SS_AGG_STRING_AGG ? SS_LIST_STRING : ag->fn == SS_AGG_ARRAY_AGG ? SS_LIST_ARRAY : SS_LIST_JSON;
    int rc = ss_state_list_format(q, kind, ag->sep, ag->distinct, v, owned);
    return rc ? ss_seterr(err, errsz, rc, "group (node %d): bad list element", g->st->id) : SS_OK;
}

/* The output row of a group (group values taken from `sample`). */
static int output_row(ss_op_t *op, const ss_buf_t *key, const gstate_t *gs, const ss_row_t *sample,
                      ss_row_t **out, char *err, size_t errsz)
{
    group_t *g = op->impl;
    const ss_plan_node_t *n = op->node;
    ss_row_t *r = ss_row_new(n->ngroup + n->naggs);
    if (!r)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = SS_OK;
    for (int i = 0; i < n->ngroup && !rc; i++)
        rc = ss_row_set(r, i, &sample->v[n->group_cols[i]]);
    for (int a = 0; a < n->naggs && !rc; a++) {
        const ss_plan_agg_t *ag = &n->aggs[a];
        const sumacc_t *acc = &gs->acc[a];
        int col = n->ngroup + a, nan = 0;
        ss_value_t v = ss_val_null();
        switch (ag->fn) {
        case SS_AGG_COUNT: v = ss_val_int(ag->arg ? acc->nn : gs->cnt); break;
        case SS_AGG_SUM:
            if (acc->nn <= 0)
                break;
            if (acc->nnum > 0) { /* NUMERIC: the exact decimal sum */
                rc = set_numeric(r, col, &acc->dsum);
                continue;
            }
            if (acc->nreal == 0 && acc->isum >= INT64_MIN && acc->isum <= INT64_MAX)
                v = ss_val_int((int64_t)acc->isum);
            else if (acc->nreal == 0)
                v = ss_val_real((double)acc->isum); /* outside 64 bits: REAL, as INT arithmetic */
            else {
                double d = sum_real(acc, &nan);
                if (!nan)
                    v = ss_val_real(d);
            }
            break;
        case SS_AGG_AVG:
            if (acc->nn > 0) {
                double d = acc->nnum > 0    ? ss_dec_to_double(&acc->dsum)
                           : acc->nreal == 0 ? (double)acc->isum
                                             : sum_real(acc, &nan);
                if (!nan)
                    v = ss_val_real(d / (double)acc->nn);
            }
            break;
        case SS_AGG_SUMSQ: /* (a helper of VAR/STDDEV: the sum of squares, as SUM) */
            if (acc->nn <= 0)
                break;
            if (acc->nreal == 0 && acc->nnum == 0 && acc->isum >= INT64_MIN && acc->isum <= INT64_MAX)
                v = ss_val_int((int64_t)acc->isum);
            else {
                double d = sum_real(acc, &nan) + (acc->nnum > 0 ? ss_dec_to_double(&acc->dsum) : 0.0);
                if (!nan)
                    v = ss_val_real(d);
            }
            break;
        case SS_AGG_BOOL_AND:
        case SS_AGG_BOOL_OR: /* values are 0/1: the sum counts the true ones */
            if (acc->nn > 0)
                v = ss_val_int(ag->fn == SS_AGG_BOOL_AND ? acc->isum == acc->nn && !acc->nreal
                                                         : acc->isum > 0 || (acc->nreal > 0 && sum_real(acc, &nan) > 0));
            break;
        case SS_AGG_VAR_SAMP:
        case SS_AGG_VAR_POP:
        case SS_AGG_STDDEV_SAMP:
        case SS_AGG_STDDEV_POP:
            if (a + 1 < n->naggs) {
                const sumacc_t *sq = &gs->acc[a + 1];
                int nan2 = 0;
                long double s1 = sum_real(acc, &nan), s2 = sum_real(sq, &nan2);
                if (acc->nnum > 0)
                    s1 += ss_dec_to_double(&acc->dsum);
                if (sq->nnum > 0)
                    s2 += ss_dec_to_double(&sq->dsum);
                int ints = !acc->nreal && !sq->nreal && !acc->nnum && !sq->nnum;
                if (!nan && !nan2)
                    v = var_value(ag->fn, acc->nn, ints, acc->isum, sq->isum, s1, s2);
            }
            break;
        case SS_AGG_STRING_AGG:
        case SS_AGG_ARRAY_AGG:
        case SS_AGG_JSON_AGG: {
            char *owned = NULL;
            rc = list_value(g, a, key, ag, &v, &owned, err, errsz);
            if (!rc)
                rc = ss_row_set(r, col, &v);
            free(owned);
            continue;
        }
        case SS_AGG_MIN:
        case SS_AGG_MAX:
            if (!ag->arg)
                continue;
            if (!gs->lost[a] && (gs->old || !gs->exists)) { /* no value left: old extreme vs entrants */
                const ss_value_t *c = &gs->cand->v[a], *o = gs->old ? &gs->old->v[col] : c;
                int take_c = o->t == SS_NULL ||
                             (c->t != SS_NULL && (ag->fn == SS_AGG_MIN ? ss_val_cmp(c, o) < 0 : ss_val_cmp(c, o) > 0));
                rc = ss_row_set(r, col, take_c ? c : o);
            } else
                rc = min_max(g, a, key, ag->fn == SS_AGG_MAX, r, col, n->schema->types[col], err, errsz);
            continue;
        }
        rc = ss_row_set(r, col, &v);
    }
    if (rc) {
        ss_row_free(r);
        return rc == SS_ERR_SQLITE ? rc : (int)ss_seterr(err, errsz, rc, "out of memory");
    }
    *out = r;
    return SS_OK;
}

/* Applies the items of one group and emits -old +new. */
static int apply_group(ss_op_t *op, item_t *its, size_t ni, gstate_t *gs, ss_zset_t *out, char *err,
                       size_t errsz)
{
    group_t *g = op->impl;
    const ss_plan_node_t *n = op->node;
    const ss_buf_t *key = &its[0].key;
    int rc = load_group(g, n->naggs, key, gs, err, errsz);
    for (size_t i = 0; i < ni && !rc; i++)
        rc = add_entry(op, &its[i], gs, err, errsz);
    ss_row_t *nw = NULL;
    int keep = gs->cnt != 0 || n->ngroup == 0;
    if (!rc && keep)
        rc = output_row(op, key, gs, its ? its[0].row : NULL, &nw, err, errsz);
    if (!rc)
        rc = keep ? save_group(g, n->naggs, key, gs, nw, err, errsz) : delete_group(g, key, err, errsz);
    if (!rc && !(gs->old && nw && ss_row_cmp(gs->old, nw) == 0)) {
        if (gs->old) {
            rc = ss_zset_add(out, gs->old, -1);
            gs->old = NULL;
        }
        if (!rc && nw) {
            rc = ss_zset_add(out, nw, 1);
            nw = NULL;
        }
    }
    ss_row_free(gs->old);
    gs->old = NULL;
    ss_row_free(nw);
    return rc;
}

static int item_cmp(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    size_t n = SS_MIN(x->key.len, y->key.len);
    int c = n ? memcmp(x->key.data, y->key.data, n) : 0;
    if (c)
        return c;
    return x->key.len < y->key.len ? -1 : x->key.len > y->key.len;
}

/* Global aggregate: make sure its single row exists (first apply, empty tick included). */
static int ensure_global(ss_op_t *op, gstate_t *gs, ss_zset_t *out, char *err, size_t errsz)
{
    group_t *g = op->impl;
    ss_buf_t key = SS_BUF_INIT;
    ss_row_t *empty = ss_row_new(0);
    int rc = empty ? ss_row_encode(empty, &key) : SS_ERR_NOMEM;
    if (!rc)
        rc = load_group(g, op->node->naggs, &key, gs, err, errsz);
    if (!rc && !gs->exists) {
        item_t it = {key, empty, 0};
        rc = apply_group(op, &it, 0, gs, out, err, errsz); /* no items: the empty-input row */
    }
    ss_row_free(gs->old);
    gs->old = NULL;
    ss_row_free(empty);
    ss_buf_free(&key);
    return rc;
}

static int group_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                       char *err, size_t errsz)
{
    (void)ctx;
    (void)port;
    const ss_plan_node_t *n = op->node;
    gstate_t gs = {0};
    gs.acc = calloc((size_t)n->naggs + 1, sizeof *gs.acc);
    gs.lost = calloc((size_t)n->naggs + 1, sizeof *gs.lost);
    gs.cand = ss_row_new(n->naggs);
    ss_zset_t z;
    ss_zset_init(&z);
    item_t *its = NULL;
    int rc = !gs.acc || !gs.lost || !gs.cand ? SS_ERR_NOMEM : ss_state_zset_consolidated(in, &z);
    if (!rc)
        ss_winstate_filter(&((group_t *)op->impl)->ws, n->view, &z); /* windows already closed */
    if (!rc && n->ngroup == 0)
        rc = ensure_global(op, &gs, out, err, errsz);
    if (!rc && z.n && !(its = calloc(z.n, sizeof *its)))
        rc = SS_ERR_NOMEM;
    for (size_t i = 0; i < z.n && !rc; i++) {
        its[i].row = z.e[i].row;
        its[i].w = z.e[i].w;
        rc = ss_state_encode_cols(z.e[i].row, n->group_cols, n->ngroup, 0, &its[i].key, NULL);
    }
    if (rc == SS_ERR_NOMEM || rc == SS_ERR_INVALID)
        ss_seterr(err, errsz, rc, "group keys");
    if (!rc && z.n)
        qsort(its, z.n, sizeof *its, item_cmp);
    for (size_t i = 0; i < z.n && !rc;) {
        size_t e = i + 1;
        while (e < z.n && item_cmp(&its[i], &its[e]) == 0)
            e++;
        rc = apply_group(op, its + i, e - i, &gs, out, err, errsz);
        if (!rc)
            rc = ss_winstate_note(&((group_t *)op->impl)->ws, its[i].row, &its[i].key, err, errsz);
        i = e;
    }
    for (size_t i = 0; its && i < z.n; i++)
        ss_buf_free(&its[i].key);
    free(its);
    if (gs.acc)
        acc_clear(gs.acc, n->naggs);
    free(gs.acc);
    free(gs.lost);
    ss_row_free(gs.cand);
    ss_zset_destroy(&z);
    if (rc)
        ss_errprefix(err, errsz, "group (node %d)", n->id);
    return rc;
}

static int group_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    group_t *g = op->impl;
    sqlite3_stmt *q = ss_state_stmt(g->st, S_SNAP, err, errsz, "SELECT out FROM %s_g WHERE out IS NOT NULL",
                                    g->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    int rc = ss_state_collect_rows(q, 0, -1, 1, out);
    return rc ? ss_seterr(err, errsz, rc, "group (node %d): bad state row", op->node->id) : SS_OK;
}

static const char *group_strategy(const ss_op_t *op)
{
    const group_t *g = op->impl;
    return g && g->need_m ? "non-linear: per-group accumulators and value multisets (MIN/MAX/DISTINCT) in "
                            "SQLite; emits -old +new per touched group"
                          : "non-linear: per-group accumulators in SQLite; emits -old +new per touched group";
}

static void group_destroy(ss_op_t *op)
{
    group_t *g = op->impl;
    if (!g)
        return;
    ss_state_destroy(g->st);
    ss_winstate_free(&g->ws);
    ss_buf_free(&g->kb);
    ss_buf_free(&g->ab);
    ss_buf_free(&g->ob);
    free(g);
    op->impl = NULL;
}

/* A closed window's group: its record and value multisets go (its output row stays in the view). */
static int drop_group(void *arg, const void *key, size_t n, char *err, size_t errsz)
{
    ss_op_t *op = arg;
    group_t *g = op->impl;
    ss_buf_t k = {(char *)key, n, n};
    int rc = delete_group(g, &k, err, errsz);
    for (int a = 0; !rc && g->need_m && a < op->node->naggs; a++) {
        sqlite3_stmt *d = ss_state_stmt(g->st, S_MDROP, err, errsz, "DELETE FROM %s_m WHERE a = ?1 AND g = ?2",
                                        g->st->prefix);
        if (!d)
            return SS_ERR_SQLITE;
        sqlite3_bind_int(d, 1, a);
        ss_state_bind_buf(d, 2, &k);
        rc = ss_state_run(g->st, d, err, errsz);
    }
    return rc;
}

static int group_advance(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, int64_t *due_us, char *err, size_t errsz)
{
    (void)ctx;
    (void)out;
    *due_us = SS_TIME_NONE;
    return ss_winstate_close(&((group_t *)op->impl)->ws, op->watermark, drop_group, op, err, errsz);
}

static void group_rollback(ss_op_t *op) { ss_winstate_rollback(&((group_t *)op->impl)->ws); }

static const ss_op_vtable_t group_vt = {
    "group", SS_OPK_NONLINEAR, group_init, group_apply, group_snapshot, group_strategy, group_destroy, group_rollback,
};

int ss_op_group_init(ss_op_t *op, char *err, size_t errsz)
{
    group_t *g = calloc(1, sizeof *g);
    if (!g)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    op->vt = &group_vt;
    op->impl = g;
    op->advance = group_advance;
    return SS_OK;
}
