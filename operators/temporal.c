/*
 * temporal.c — SS_PN_TEMPORAL: a temporal filter (WHERE ts > NOW() - INTERVAL
 * '5 minutes'), maintained as time passes, as Materialize maintains mz_now().
 *
 * Each bound k of the node (src/plan_temporal.c) says: exprs[k](row) <op>
 * floor(now / g) * g + off. For a row, every bound gives a half-open interval of
 * wall-clock time during which it holds; their intersection [from, until) is
 * when the row passes. A row is emitted (+w) when the clock enters its interval
 * and retracted (-w) when it leaves it, by apply when the row arrives or leaves,
 * and by advance when time passes; the engine runs advance when the next
 * boundary is due (engine/pipe_time.c), so rows leave the view on time, not at
 * the next delta. Rows whose bound is NULL never pass.
 *
 * State st_<id>_t(r = encoded row, n = multiplicity, f = from, u = until,
 * live = 1 while emitted), with indexes on f (rows waiting to enter) and u (rows
 * to retract). Rows whose interval is over are not kept.
 */
#include "ss_op.h"
#include "ss_state.h"

#include "ss_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_GET, S_PUT, S_DEL, S_DUE_IN, S_DUE_OUT, S_SET_LIVE, S_NEXT, S_SNAP, S_N };

typedef enum { B_LT, B_LE, B_GT, B_GE, B_EQ } bop_t;

typedef struct bound {
    bop_t op;
    int64_t g;           /* granularity of the NOW side, µs */
    ss_interval_t off;   /* NOW side = floor(now / g) * g + off */
} bound_t;

typedef struct temporal {
    ss_state_t *st;
    int nb;
    bound_t *b;
    ss_buf_t rb;
    int64_t next;        /* earliest f of waiting rows / u of live rows, as last computed (cache) */
    int next_known;
} temporal_t;

static int64_t fdiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

static int parse_bound(const char *v, bound_t *b)
{
    char op[4];
    long long g, us;
    int months, days;
    if (sscanf(v, "%3s %lld %d %d %lld", op, &g, &months, &days, &us) != 5 || g <= 0)
        return -1;
    static const char *const names[] = {"lt", "le", "gt", "ge", "eq"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(op, names[i]))
            b->op = (bop_t)i;
    b->g = g;
    b->off = (ss_interval_t){us, days, months};
    return strcmp(op, names[b->op]) ? -1 : 0;
}

static int temporal_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    temporal_t *t = op->impl;
    const ss_plan_node_t *n = op->node;
    if (!t->st && !(t->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    free(t->b);
    t->nb = n->nexprs;
    if (!(t->b = calloc((size_t)t->nb + 1, sizeof *t->b)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int k = 0; k < t->nb; k++) {
        char name[16];
        snprintf(name, sizeof name, "bound%d", k);
        const char *v = ss_plan_opt(n, name);
        if (!v || parse_bound(v, &t->b[k]))
            return ss_seterr(err, errsz, SS_ERR_INVALID, "temporal filter node %d: bad %s", n->id, name);
    }
    t->next_known = 0;
    const char *p = t->st->prefix;
    return ss_state_exec(t->st, err, errsz,
                         "CREATE TABLE IF NOT EXISTS %s_t(r BLOB PRIMARY KEY, n INTEGER NOT NULL, f INTEGER NOT NULL,"
                         " u INTEGER NOT NULL, live INTEGER NOT NULL) WITHOUT ROWID;"
                         "CREATE INDEX IF NOT EXISTS %s_t_f ON %s_t(f) WHERE live = 0;"
                         "CREATE INDEX IF NOT EXISTS %s_t_u ON %s_t(u) WHERE live = 1;",
                         p, p, p, p, p);
}

/* The row's interval [from, until); 0 if a bound is NULL (the row never passes). */
static int interval_of(ss_op_t *op, const ss_row_t *row, int64_t *from, int64_t *until, char *err, size_t errsz)
{
    temporal_t *t = op->impl;
    int64_t f = INT64_MIN, u = INT64_MAX;
    for (int k = 0; k < t->nb; k++) {
        ss_value_t v;
        char *owned = NULL;
        int rc = ss_expr_eval(op->node->exprs[k], row, &v, &owned, err, errsz);
        free(owned);
        if (rc == SS_ERR_INVALID)
            return ss_op_row_error(op, row, err, errsz);
        if (rc)
            return rc;
        if (v.t == SS_NULL)
            return 0;
        if (!ss_vtype_is_time(v.t))
            return ss_seterr(err, errsz, SS_ERR_INTERNAL, "temporal filter node %d: bound %d is not a time",
                             op->node->id, k);
        const bound_t *b = &t->b[k];
        int64_t x; /* v - off: the value NOW's side must be compared with */
        char e2[128];
        if (ss_ts_add_interval(ss_val_time_us(&v), &b->off, -1, &x, e2, sizeof e2))
            x = ss_val_time_us(&v) - ss_interval_span_us(&b->off); /* past the calendar's range: plain µs */
        int64_t lo_c = fdiv(x + b->g - 1, b->g) * b->g;  /* ceil(x / g) * g */
        int64_t hi_f = (fdiv(x, b->g) + 1) * b->g;       /* (floor(x / g) + 1) * g */
        switch (b->op) { /* v op floor(now/g)*g + off  <=>  ... */
        case B_GT: u = SS_MIN(u, lo_c); break;   /* now < ceil(x/g)*g */
        case B_GE: u = SS_MIN(u, hi_f); break;   /* now < (floor(x/g)+1)*g */
        case B_LT: f = SS_MAX(f, hi_f); break;   /* now >= (floor(x/g)+1)*g */
        case B_LE: f = SS_MAX(f, lo_c); break;   /* now >= ceil(x/g)*g */
        case B_EQ: f = SS_MAX(f, lo_c); u = SS_MIN(u, hi_f); break;
        }
    }
    *from = f;
    *until = u;
    return 1;
}

/* Steps q (a RETURNING r, n statement), adding each row with weight sign * n. */
static int collect(sqlite3_stmt *q, int sign, ss_zset_t *out)
{
    int rc = SS_OK;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        ss_row_t *r = NULL;
        rc = ss_state_column_row(q, 0, &r);
        if (!rc)
            rc = ss_zset_add(out, r, sign * sqlite3_column_int64(q, 1));
    }
    sqlite3_reset(q);
    return rc;
}

/* Emits the rows whose interval the clock left (-n) or entered (+n) by now; forgets the rows
 * whose interval is over. */
static int pass_time(ss_op_t *op, int64_t now, ss_zset_t *out, char *err, size_t errsz)
{
    temporal_t *t = op->impl;
    const char *p = t->st->prefix;
    if (t->next_known && (t->next == SS_TIME_NONE || now < t->next))
        return SS_OK;
    sqlite3_stmt *q = ss_state_stmt(t->st, S_DUE_OUT, err, errsz,
                                    "DELETE FROM %s_t WHERE live = 1 AND u <= ?1 RETURNING r, n", p);
    if (!q)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(q, 1, now);
    int rc = collect(q, -1, out);
    if (!rc && !(q = ss_state_stmt(t->st, S_DUE_IN, err, errsz, "UPDATE %s_t SET live = 1 WHERE live = 0 AND "
                                                                "f <= ?1 AND u > ?1 RETURNING r, n", p)))
        return SS_ERR_SQLITE;
    if (!rc) {
        sqlite3_bind_int64(q, 1, now);
        rc = collect(q, 1, out);
    }
    if (rc)
        return ss_seterr(err, errsz, rc, "temporal filter node %d: bad state row", op->node->id);
    if (!(q = ss_state_stmt(t->st, S_SET_LIVE, err, errsz, "DELETE FROM %s_t WHERE live = 0 AND u <= ?1", p)))
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(q, 1, now);
    t->next_known = 0;
    return ss_state_run(t->st, q, err, errsz);
}

/* One changed input row: the state's multiplicity changes by w; emitted when live now. */
static int change(ss_op_t *op, const ss_row_t *row, int64_t w, int64_t now, ss_zset_t *out, char *err, size_t errsz)
{
    temporal_t *t = op->impl;
    const char *p = t->st->prefix;
    int64_t f = 0, u = 0;
    int v = interval_of(op, row, &f, &u, err, errsz);
    if (v <= 0 || f >= u || u <= now)
        return v < 0 ? v : SS_OK; /* never passes, or its time is over */
    sqlite3_stmt *g = ss_state_stmt(t->st, S_GET, err, errsz, "SELECT n FROM %s_t WHERE r = ?1", p);
    if (!g)
        return SS_ERR_SQLITE;
    ss_state_bind_row(g, 1, row, &t->rb);
    int64_t n = sqlite3_step(g) == SQLITE_ROW ? sqlite3_column_int64(g, 0) : 0;
    sqlite3_reset(g);
    int live = f <= now;
    n += w;
    int rc;
    if (n == 0) {
        sqlite3_stmt *d = ss_state_stmt(t->st, S_DEL, err, errsz, "DELETE FROM %s_t WHERE r = ?1", p);
        if (!d)
            return SS_ERR_SQLITE;
        ss_state_bind_row(d, 1, row, &t->rb);
        rc = ss_state_run(t->st, d, err, errsz);
    } else {
        sqlite3_stmt *s = ss_state_stmt(t->st, S_PUT, err, errsz, "INSERT OR REPLACE INTO %s_t(r, n, f, u, live) "
                                                                  "VALUES(?1, ?2, ?3, ?4, ?5)", p);
        if (!s)
            return SS_ERR_SQLITE;
        ss_state_bind_row(s, 1, row, &t->rb);
        sqlite3_bind_int64(s, 2, n);
        sqlite3_bind_int64(s, 3, f);
        sqlite3_bind_int64(s, 4, u);
        sqlite3_bind_int(s, 5, live);
        rc = ss_state_run(t->st, s, err, errsz);
    }
    t->next_known = 0;
    if (!rc && live)
        rc = ss_zset_add_copy(out, row, w);
    return rc;
}

static int temporal_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                          size_t errsz)
{
    (void)ctx;
    (void)port;
    int64_t now = op->now_us != SS_TIME_NONE ? op->now_us : ss_clock_us();
    int rc = pass_time(op, now, out, err, errsz); /* the state first catches up with the clock */
    for (size_t i = 0; !rc && i < in->n; i++)
        if (in->e[i].w)
            rc = change(op, in->e[i].row, in->e[i].w, now, out, err, errsz);
    if (rc && rc != SS_ERR_INVALID)
        ss_errprefix(err, errsz, "temporal filter (node %d)", op->node->id);
    return rc;
}

static int temporal_advance(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, int64_t *due_us, char *err, size_t errsz)
{
    (void)ctx;
    temporal_t *t = op->impl;
    int64_t now = op->now_us != SS_TIME_NONE ? op->now_us : ss_clock_us();
    int rc = pass_time(op, now, out, err, errsz);
    if (!rc && !t->next_known) {
        sqlite3_stmt *q = ss_state_stmt(t->st, S_NEXT, err, errsz,
                                        "SELECT min(x) FROM (SELECT min(f) AS x FROM %s_t WHERE live = 0"
                                        " UNION ALL SELECT min(u) FROM %s_t WHERE live = 1)", t->st->prefix,
                                        t->st->prefix);
        if (!q)
            return SS_ERR_SQLITE;
        t->next = SS_TIME_NONE;
        if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
            t->next = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
        t->next_known = 1;
    }
    *due_us = rc ? SS_TIME_NONE : t->next;
    return rc;
}

static int temporal_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    temporal_t *t = op->impl;
    sqlite3_stmt *q = ss_state_stmt(t->st, S_SNAP, err, errsz, "SELECT r, n FROM %s_t WHERE live = 1", t->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    int rc = ss_state_collect_rows(q, 0, 1, 0, out);
    return rc ? ss_seterr(err, errsz, rc, "temporal filter (node %d): bad state row", op->node->id) : SS_OK;
}

static const char *temporal_strategy(const ss_op_t *op)
{
    (void)op;
    return "validity interval per row in SQLite; a timer retracts or admits rows when NOW() passes their bound";
}

static void temporal_rollback(ss_op_t *op) { ((temporal_t *)op->impl)->next_known = 0; }

static void temporal_destroy(ss_op_t *op)
{
    temporal_t *t = op->impl;
    if (!t)
        return;
    ss_state_destroy(t->st);
    free(t->b);
    ss_buf_free(&t->rb);
    free(t);
    op->impl = NULL;
}

static const ss_op_vtable_t temporal_vt = {
    "temporal_filter", SS_OPK_NONLINEAR, temporal_init, temporal_apply, temporal_snapshot, temporal_strategy,
    temporal_destroy, temporal_rollback,
};

int ss_op_temporal_init(ss_op_t *op, char *err, size_t errsz)
{
    temporal_t *t = calloc(1, sizeof *t);
    if (!t)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    op->vt = &temporal_vt;
    op->impl = t;
    op->advance = temporal_advance;
    return SS_OK;
}
