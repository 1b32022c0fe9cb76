/*
 * check_relational.c — the equivalence harness for the relational operators
 * (source, filter, project, union, distinct, join, group, topk, view).
 *
 * Random delta streams (inserts, updates, deletes, duplicate rows, keys out of
 * order, and for sources deletes of absent keys) are fed through an operator in
 * random micro-batches, each inside a transaction on an in-memory SQLite. After
 * every batch the integral of the operator's outputs must equal recomputing the
 * same query from scratch over the integrated input, with SQLite as the oracle
 * (the input is loaded into plain tables and the equivalent SQL is run); the
 * operator's output also feeds a view operator whose table view_<label> (both
 * its snapshot and its typed columns with _mult) must equal the integral.
 * Some batches are rolled back (no trace may remain) and operators are
 * re-created on the same database (a restart must continue from SQLite state).
 * Plus deterministic cases (LEFT join retraction, top-k deletes, global
 * aggregates, TTL) and a chain source -> filter -> project -> group -> view.
 */
#include "relgen.h"
#include "ss_op.h"
#include "ss_state.h"

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const int K3[] = {0, 1, 2};             /* c0 INT, c1 TEXT, c2 INT/REAL */
static const int K6[] = {0, 1, 2, 0, 1, 2};

/* Seeds are fixed; SS_TEST_SEED=n shifts them all to explore other streams. */
static uint64_t seed_base(void)
{
    const char *e = getenv("SS_TEST_SEED");
    return e ? (uint64_t)strtoull(e, NULL, 10) * 1000003ULL : 0;
}

/* ---- plan nodes built by hand ---- */
static ss_schema_t *schema_n(int n, const char *prefix)
{
    ss_schema_t *s = ss_schema_new(n);
    for (int i = 0; i < n; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "%s%d", prefix, i);
        ss_schema_set(s, i, nm, SS_COL_ANY, 0);
    }
    return s;
}

static ss_plan_node_t *node_new(ss_plan_kind_t k, int id, int ncols)
{
    ss_plan_node_t *n = ss_plan_node_new(k);
    n->id = id;
    n->label = ss_sprintf("n%d", id);
    n->schema = schema_n(ncols, "c");
    return n;
}

static void node_opt(ss_plan_node_t *n, const char *name, const char *value)
{
    n->opts = realloc(n->opts, sizeof *n->opts * (size_t)(n->nopts + 1));
    n->opts[n->nopts].name = ss_strdup(name);
    n->opts[n->nopts].value = ss_strdup(value);
    n->nopts++;
}

/* ---- the harness: one operator followed by a view ---- */
typedef struct hx {
    sqlite3 *db;
    ss_op_ctx_t ctx;
    ss_plan_node_t *node, *vnode;
    ss_op_t *op, *view;
    ss_zset_t in[2], out;
    int ncols_in[2];
    int batches;
} hx_t;

static void hx_open(hx_t *h, ss_plan_node_t *node, int ncols0, int ncols1)
{
    memset(h, 0, sizeof *h);
    ck_assert_int_eq(sqlite3_open(":memory:", &h->db), SQLITE_OK);
    sqlite3_exec(h->db, "PRAGMA case_sensitive_like = ON", NULL, NULL, NULL); /* LIKE as in PostgreSQL */
    h->ctx.db = h->db;
    h->node = node;
    h->ncols_in[0] = ncols0;
    h->ncols_in[1] = ncols1;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_op_new(node, &h->op, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(h->op->vt->init(h->op, &h->ctx, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_ptr_nonnull(h->op->vt->strategy(h->op));
    h->vnode = ss_plan_node_new(SS_PN_VIEW);
    h->vnode->id = 1000 + node->id;
    h->vnode->label = ss_strdup("v");
    h->vnode->schema = ss_schema_copy(node->schema);
    h->vnode->nin = 1;
    h->vnode->in[0] = node;
    ck_assert_msg(ss_op_new(h->vnode, &h->view, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(h->view->vt->init(h->view, &h->ctx, err, sizeof err) == SS_OK, "%s", err);
    for (int i = 0; i < 2; i++)
        ss_zset_init(&h->in[i]);
    ss_zset_init(&h->out);
}

static void hx_close(hx_t *h)
{
    ss_op_destroy(h->op);
    ss_op_destroy(h->view);
    ss_plan_node_free(h->node);
    ss_plan_node_free(h->vnode);
    for (int i = 0; i < 2; i++)
        ss_zset_destroy(&h->in[i]);
    ss_zset_destroy(&h->out);
    sqlite3_close(h->db);
}

/* One micro-batch: d0 on port 0 then d1 on port 1 (either may be NULL), in one transaction. */
static void hx_step(hx_t *h, const ss_zset_t *d0, const ss_zset_t *d1)
{
    char err[SS_ERRSZ] = "";
    ss_zset_t o, vo;
    ss_zset_init(&o);
    ss_zset_init(&vo);
    ck_assert_int_eq(sqlite3_exec(h->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    const ss_zset_t *d[2] = {d0, d1};
    for (int p = 0; p < 2; p++) {
        if (!d[p])
            continue;
        ck_assert_msg(h->op->vt->apply(h->op, &h->ctx, p, d[p], &o, err, sizeof err) == SS_OK, "%s", err);
        ss_zset_extend(&h->in[p], d[p], 1);
        ss_zset_consolidate(&h->in[p]);
    }
    ck_assert_msg(h->view->vt->apply(h->view, &h->ctx, 0, &o, &vo, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    ck_assert(ss_zset_equal(&o, &vo)); /* the view passes its input through */
    ss_zset_extend(&h->out, &o, 1);
    ss_zset_consolidate(&h->out);
    ss_zset_destroy(&o);
    ss_zset_destroy(&vo);
    h->batches++;
}

/* Simulates a restart: new operator instances on the same database reload their state. */
static void hx_reopen(hx_t *h)
{
    char err[SS_ERRSZ] = "";
    ss_op_destroy(h->op);
    ss_op_destroy(h->view);
    ck_assert_msg(ss_op_new(h->node, &h->op, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(h->op->vt->init(h->op, &h->ctx, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(ss_op_new(h->vnode, &h->view, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(h->view->vt->init(h->view, &h->ctx, err, sizeof err) == SS_OK, "%s", err);
}

/* A batch whose transaction is rolled back (e.g. a later operator failed): no trace may remain. */
static void hx_step_rollback(hx_t *h, const ss_zset_t *d0, const ss_zset_t *d1)
{
    char err[SS_ERRSZ] = "";
    ss_zset_t o, vo;
    ss_zset_init(&o);
    ss_zset_init(&vo);
    ck_assert_int_eq(sqlite3_exec(h->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    if (d0)
        ck_assert_msg(h->op->vt->apply(h->op, &h->ctx, 0, d0, &o, err, sizeof err) == SS_OK, "%s", err);
    if (d1)
        ck_assert_msg(h->op->vt->apply(h->op, &h->ctx, 1, d1, &o, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(h->view->vt->apply(h->view, &h->ctx, 0, &o, &vo, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    ss_zset_destroy(&o);
    ss_zset_destroy(&vo);
}

/* The view's table, read through its typed columns and _mult. */
static void view_table(hx_t *h, ss_zset_t *z)
{
    ss_buf_t q = SS_BUF_INIT;
    ss_buf_puts(&q, "SELECT ");
    for (int i = 0; i < h->vnode->schema->n; i++) {
        ss_state_quote_ident(&q, h->vnode->schema->names[i]);
        ss_buf_puts(&q, ", ");
    }
    ss_buf_puts(&q, "_mult FROM view_v");
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_prepare_v2(h->db, ss_buf_cstr(&q), -1, &s, NULL), SQLITE_OK);
    int n = h->vnode->schema->n;
    while (sqlite3_step(s) == SQLITE_ROW) {
        ss_row_t *r = ss_row_new(n);
        for (int i = 0; i < n; i++) {
            ss_value_t v = ss_state_column_value(s, i);
            ss_row_set(r, i, &v);
        }
        ss_zset_add(z, r, sqlite3_column_int64(s, n));
    }
    sqlite3_finalize(s);
    ss_buf_free(&q);
}

/* Compares the integral of outputs with `want`, and the view with both. */
static void hx_expect(hx_t *h, const ss_zset_t *want, const char *what)
{
    if (!zset_close(&h->out, want)) {
        char *a = zset_str(&h->out), *b = zset_str(want), *i0 = zset_str(&h->in[0]), *i1 = zset_str(&h->in[1]);
        ck_abort_msg("%s after batch %d:\n--- integral of outputs\n%s--- oracle\n%s--- input 0\n%s--- input 1\n%s",
                     what, h->batches, a, b, i0, i1);
    }
    char err[SS_ERRSZ] = "";
    ss_zset_t snap, tab;
    ss_zset_init(&snap);
    ss_zset_init(&tab);
    ck_assert_msg(h->view->vt->snapshot(h->view, &h->ctx, &snap, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(ss_zset_equal(&snap, &h->out), "%s: view snapshot differs from the integral", what);
    view_table(h, &tab);
    ck_assert_msg(zset_close(&tab, &h->out), "%s: view table differs from the integral", what);
    if (h->op->vt->snapshot) { /* operators that keep state can reproduce their integrated output */
        ss_zset_t os;
        ss_zset_init(&os);
        int rc = h->op->vt->snapshot(h->op, &h->ctx, &os, err, sizeof err);
        ck_assert_msg(rc == SS_OK || rc == SS_ERR_UNSUPPORTED, "%s", err);
        if (rc == SS_OK && !ss_zset_equal(&os, &h->out))
            ck_abort_msg("%s: operator snapshot differs from the integral:\n%s", what, zset_str(&os));
        ss_zset_destroy(&os);
    }
    ss_zset_destroy(&snap);
    ss_zset_destroy(&tab);
}

/* Loads the integrated inputs as t (one input) or a and b (two) and checks against the oracle SQL. */
static void hx_check(hx_t *h, const char *sql, const char *what)
{
    if (h->ncols_in[1]) {
        ck_assert_int_eq(sql_load(h->db, "a", h->ncols_in[0], &h->in[0]), 0);
        ck_assert_int_eq(sql_load(h->db, "b", h->ncols_in[1], &h->in[1]), 0);
    } else
        ck_assert_int_eq(sql_load(h->db, "t", h->ncols_in[0], &h->in[0]), 0);
    ss_zset_t want;
    ss_zset_init(&want);
    ck_assert_int_eq(sql_query(h->db, sql, &want), 0);
    char label[600];
    snprintf(label, sizeof label, "%s [%s]", what, sql);
    hx_expect(h, &want, label);
    ss_zset_destroy(&want);
}

/* ---- random valid delta streams (integrals never negative) ---- */

/* Appends nev random events to d, keeping `live` (consolidated) equal to the integral. */
static void gen_delta(rg_t *g, ss_zset_t *live, ss_zset_t *d, int nev)
{
    for (int e = 0; e < nev; e++) {
        int c = rg_int(g, 100);
        if (live->n == 0 || c < 40) {
            ss_row_t *r = rg_row(g);
            ss_zset_add_copy(live, r, 1);
            ss_zset_add(d, r, 1);
        } else if (c < 55) {
            const ss_row_t *r = live->e[rg_int(g, (int)live->n)].row;
            ss_zset_add_copy(d, r, 1);
            ss_zset_add_copy(live, r, 1);
        } else {
            ss_row_t *r = ss_row_copy(live->e[rg_int(g, (int)live->n)].row);
            ss_zset_add_copy(d, r, -1);
            ss_zset_add_copy(live, r, -1);
            if (c >= 80) { /* update: -old +new with the same first column */
                ss_row_t *nr = rg_row(g);
                ss_row_set(nr, 0, &r->v[0]);
                ss_zset_add_copy(live, nr, 1);
                ss_zset_add(d, nr, 1);
            }
            ss_row_free(r);
        }
        ss_zset_consolidate(live);
    }
}

/* Drives a one- or two-input harness through `nbatch` random batches, checking after each. */
static void drive(hx_t *h, rg_t *g, rg_t *g1, int nbatch, const char *sql, const char *what)
{
    ss_zset_t live[2];
    ss_zset_init(&live[0]);
    ss_zset_init(&live[1]);
    for (int b = 0; b < nbatch; b++) {
        ss_zset_t d[2];
        ss_zset_init(&d[0]);
        ss_zset_init(&d[1]);
        int which = g1 ? rg_int(g, 3) : 0; /* 0: port 0, 1: port 1, 2: both */
        int nev = rg_pct(g, 10) ? 0 : 1 + rg_int(g, 6);
        if (which != 1)
            gen_delta(g, &live[0], &d[0], nev);
        if (which != 0)
            gen_delta(g1, &live[1], &d[1], 1 + rg_int(g, 6));
        if (rg_pct(g, 4)) { /* roll a batch back first: it must leave no trace */
            hx_step_rollback(h, which != 1 ? &d[0] : NULL, which != 0 ? &d[1] : NULL);
            hx_check(h, sql, what);
        }
        if (rg_pct(g, 4))
            hx_reopen(h);
        hx_step(h, which != 1 ? &d[0] : NULL, which != 0 ? &d[1] : NULL);
        hx_check(h, sql, what);
        ss_zset_destroy(&d[0]);
        ss_zset_destroy(&d[1]);
    }
    ss_zset_destroy(&live[0]);
    ss_zset_destroy(&live[1]);
}

static char *render(const ss_expr_t *e, const ss_schema_t *s)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_expr_to_sql(e, s, &b);
    return ss_buf_take(&b);
}

#define STREAMS 80
#define BATCHES 25

/* ---- filter / project / union / distinct ---- */
START_TEST(test_filter_random)
{
    for (int it = 0; it < STREAMS; it++) {
        rg_t g = {.s = seed_base() + 1000 + (uint64_t)it * 7919, .ncols = 3, .kinds = K3, .int_range = 6};
        ss_plan_node_t *n = node_new(SS_PN_FILTER, 1, 3);
        n->pred = rg_bool_expr(&g, 3);
        char *p = render(n->pred, n->schema);
        char sql[1024];
        snprintf(sql, sizeof sql, "SELECT c0, c1, c2 FROM t WHERE %s", p);
        hx_t h;
        hx_open(&h, n, 3, 0);
        drive(&h, &g, NULL, BATCHES, sql, "filter");
        hx_close(&h);
        free(p);
    }
}
END_TEST

START_TEST(test_project_random)
{
    for (int it = 0; it < STREAMS; it++) {
        rg_t g = {.s = seed_base() + 2000 + (uint64_t)it * 7919, .ncols = 3, .kinds = K3, .int_range = 6};
        ss_plan_node_t *n = node_new(SS_PN_PROJECT, 2, 3);
        n->nexprs = 3;
        n->exprs = calloc(3, sizeof *n->exprs);
        n->exprs[0] = rg_num_expr(&g, 3);
        n->exprs[1] = rg_text_expr(&g, 3);
        n->exprs[2] = rg_bool_expr(&g, 2);
        ss_schema_t *in = schema_n(3, "c");
        char *e[3];
        for (int i = 0; i < 3; i++)
            e[i] = render(n->exprs[i], in);
        char sql[2048];
        snprintf(sql, sizeof sql, "SELECT %s, %s, %s FROM t", e[0], e[1], e[2]);
        hx_t h;
        hx_open(&h, n, 3, 0);
        drive(&h, &g, NULL, BATCHES, sql, "project");
        hx_close(&h);
        for (int i = 0; i < 3; i++)
            free(e[i]);
        ss_schema_free(in);
    }
}
END_TEST

START_TEST(test_union_random)
{
    for (int it = 0; it < STREAMS / 2; it++) {
        rg_t g = {.s = seed_base() + 3000 + (uint64_t)it, .ncols = 3, .kinds = K3, .int_range = 4};
        rg_t g1 = {.s = seed_base() + 3500 + (uint64_t)it, .ncols = 3, .kinds = K3, .int_range = 4};
        hx_t h;
        hx_open(&h, node_new(SS_PN_UNION, 3, 3), 3, 3);
        drive(&h, &g, &g1, BATCHES, "SELECT * FROM a UNION ALL SELECT * FROM b", "union");
        hx_close(&h);
    }
}
END_TEST

START_TEST(test_distinct_random)
{
    for (int it = 0; it < STREAMS; it++) {
        rg_t g = {.s = seed_base() + 4000 + (uint64_t)it * 31, .ncols = 3, .kinds = (const int[]){0, 0, 0}, .int_range = 2};
        hx_t h;
        hx_open(&h, node_new(SS_PN_DISTINCT, 4, 3), 3, 0);
        drive(&h, &g, NULL, BATCHES, "SELECT DISTINCT c0, c1, c2 FROM t", "distinct");
        hx_close(&h);
    }
}
END_TEST

/* ---- join ---- */
static void join_case(int it, ss_join_type_t jt)
{
    rg_t g = {.s = seed_base() + 5000 + (uint64_t)it * 104729 + (uint64_t)jt, .ncols = 3, .kinds = K3, .int_range = 4,
              .real_keys = 1};
    rg_t g1 = {.s = seed_base() + 6000 + (uint64_t)it * 7 + (uint64_t)jt, .ncols = 3, .kinds = K3, .int_range = 4,
               .real_keys = 1};
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_JOIN);
    n->id = 5;
    n->join_type = jt;
    n->schema = ss_schema_new(6);
    const char *names[] = {"a.c0", "a.c1", "a.c2", "b.c0", "b.c1", "b.c2"};
    for (int i = 0; i < 6; i++)
        ss_schema_set(n->schema, i, names[i], SS_COL_ANY, 0);
    n->nkeys = it % 3 == 2 ? 2 : 1;
    n->lkeys = calloc(2, sizeof(int));
    n->rkeys = calloc(2, sizeof(int));
    n->lkeys[1] = n->rkeys[1] = 1; /* second key: c1 = c1 */
    char on[1024] = "a.c0 = b.c0";
    if (n->nkeys == 2)
        strcat(on, " AND a.c1 = b.c1");
    if (it % 2) {
        rg_t ge = {.s = g.s ^ 0xabcdef, .ncols = 6, .kinds = K6, .int_range = 4};
        n->pred = rg_bool_expr(&ge, 2);
        char *p = render(n->pred, n->schema);
        snprintf(on + strlen(on), sizeof on - strlen(on), " AND %s", p);
        free(p);
    }
    char sql[1400];
    snprintf(sql, sizeof sql, "SELECT a.c0, a.c1, a.c2, b.c0, b.c1, b.c2 FROM a %s JOIN b ON %s",
             jt == SS_JOIN_LEFT ? "LEFT" : "", on);
    hx_t h;
    hx_open(&h, n, 3, 3);
    drive(&h, &g, &g1, BATCHES, sql, jt == SS_JOIN_LEFT ? "left join" : "inner join");
    hx_close(&h);
}

START_TEST(test_join_inner_random)
{
    for (int it = 0; it < STREAMS; it++)
        join_case(it, SS_JOIN_INNER);
}
END_TEST

START_TEST(test_join_left_random)
{
    for (int it = 0; it < STREAMS; it++)
        join_case(it, SS_JOIN_LEFT);
}
END_TEST

START_TEST(test_join_left_retract)
{
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_JOIN);
    n->id = 9;
    n->join_type = SS_JOIN_LEFT;
    n->schema = schema_n(4, "c");
    n->nkeys = 1;
    n->lkeys = calloc(1, sizeof(int));
    n->rkeys = calloc(1, sizeof(int));
    hx_t h;
    hx_open(&h, n, 2, 2);
    ss_zset_t l, r, want;
    ss_zset_init(&l);
    ss_zset_init(&r);
    ss_zset_init(&want);
    ss_zset_add(&l, mk_row(2, 'i', (int64_t)1, 't', "x"), 1);
    hx_step(&h, &l, NULL); /* unmatched: x padded */
    ss_zset_add(&want, mk_row(4, 'i', (int64_t)1, 't', "x", 'n', 'n'), 1);
    hx_expect(&h, &want, "left row without match");
    ss_zset_add(&r, mk_row(2, 'r', 1.0, 't', "y"), 1);
    hx_step(&h, NULL, &r); /* 1.0 matches 1: padding retracted */
    ss_zset_clear(&want);
    ss_zset_add(&want, mk_row(4, 'i', (int64_t)1, 't', "x", 'r', 1.0, 't', "y"), 1);
    hx_expect(&h, &want, "match appears");
    hx_step(&h, NULL, &r); /* a second copy on the right */
    ss_zset_clear(&want);
    ss_zset_add(&want, mk_row(4, 'i', (int64_t)1, 't', "x", 'r', 1.0, 't', "y"), 2);
    hx_expect(&h, &want, "two matches");
    ss_zset_clear(&r);
    ss_zset_add(&r, mk_row(2, 'r', 1.0, 't', "y"), -2);
    hx_step(&h, NULL, &r);
    ss_zset_clear(&want);
    ss_zset_add(&want, mk_row(4, 'i', (int64_t)1, 't', "x", 'n', 'n'), 1);
    hx_expect(&h, &want, "match disappears");
    ss_zset_clear(&l);
    ss_zset_add(&l, mk_row(2, 'n', 't', "z"), 1);
    hx_step(&h, &l, NULL);
    ss_zset_add(&want, mk_row(4, 'n', 't', "z", 'n', 'n'), 1);
    hx_expect(&h, &want, "NULL key never matches");
    ss_zset_destroy(&l);
    ss_zset_destroy(&r);
    ss_zset_destroy(&want);
    hx_close(&h);
}
END_TEST

/* ---- group ---- */
typedef struct aggspec {
    ss_agg_fn_t fn;
    int distinct;
    int arg; /* column, -1 = COUNT(*), -2 = expression c0 + c2 */
} aggspec_t;

static const char *agg_name(ss_agg_fn_t f)
{
    static const char *n[] = {"COUNT", "SUM", "MIN", "MAX", "AVG"};
    return n[f];
}

static void group_case(uint64_t seed, int ngroup, const int *gcols, int nagg, const aggspec_t *as, int nbatch)
{
    rg_t g = {.s = seed_base() + seed, .ncols = 3, .kinds = K3, .int_range = 5};
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_GROUP);
    n->id = 7;
    n->schema = schema_n(ngroup + nagg, "g");
    n->ngroup = ngroup;
    n->group_cols = calloc((size_t)ngroup + 1, sizeof(int));
    memcpy(n->group_cols, gcols, sizeof(int) * (size_t)ngroup);
    n->naggs = nagg;
    n->aggs = calloc((size_t)nagg, sizeof *n->aggs);
    ss_buf_t sql = SS_BUF_INIT, gb = SS_BUF_INIT;
    ss_buf_puts(&sql, "SELECT ");
    for (int i = 0; i < ngroup; i++)
        ss_buf_printf(&gb, "%sc%d", i ? ", " : "", gcols[i]);
    if (ngroup)
        ss_buf_printf(&sql, "%s, ", ss_buf_cstr(&gb));
    for (int i = 0; i < nagg; i++) {
        n->aggs[i].fn = as[i].fn;
        n->aggs[i].distinct = as[i].distinct;
        const char *arg = "*";
        if (as[i].arg == -2) {
            n->aggs[i].arg = ex_bin(SS_OP_ADD, ex_col(0), ex_col(2));
            arg = "c0 + c2";
        } else if (as[i].arg >= 0) {
            n->aggs[i].arg = ex_col(as[i].arg);
            arg = as[i].arg == 0 ? "c0" : as[i].arg == 1 ? "c1" : "c2";
        }
        ss_buf_printf(&sql, "%s%s(%s%s)", i ? ", " : "", agg_name(as[i].fn), as[i].distinct ? "DISTINCT " : "",
                      arg);
    }
    ss_buf_puts(&sql, " FROM t");
    if (ngroup)
        ss_buf_printf(&sql, " GROUP BY %s", ss_buf_cstr(&gb));
    hx_t h;
    hx_open(&h, n, 3, 0);
    if (ngroup == 0) { /* an empty tick already yields the empty-input row */
        ss_zset_t empty;
        ss_zset_init(&empty);
        hx_step(&h, &empty, NULL);
        hx_check(&h, ss_buf_cstr(&sql), "global aggregate on empty input");
    }
    drive(&h, &g, NULL, nbatch, ss_buf_cstr(&sql), "group");
    hx_close(&h);
    ss_buf_free(&sql);
    ss_buf_free(&gb);
}

START_TEST(test_group_random)
{
    static const aggspec_t all[] = {
        {SS_AGG_COUNT, 0, -1}, {SS_AGG_SUM, 0, 2}, {SS_AGG_MIN, 0, 1}, {SS_AGG_MAX, 0, 2},
        {SS_AGG_AVG, 0, 2},    {SS_AGG_COUNT, 1, 1}, {SS_AGG_COUNT, 0, 2}, {SS_AGG_SUM, 1, 0},
        {SS_AGG_MIN, 0, 2},    {SS_AGG_MAX, 0, 1}, {SS_AGG_SUM, 0, -2}, {SS_AGG_AVG, 1, 2},
        {SS_AGG_MAX, 1, 0},
    };
    static const int g0[] = {0}, g01[] = {0, 1}, g1[] = {1};
    for (int it = 0; it < STREAMS; it++) {
        uint64_t seed = 7000 + (uint64_t)it * 15485863;
        int v = it % 4;
        group_case(seed, v == 3 ? 0 : v == 2 ? 2 : 1, v == 2 ? g01 : v == 1 ? g1 : g0, 13, all, BATCHES);
    }
}
END_TEST

/* MIN/MAX stay correct when the current extreme is deleted. */
START_TEST(test_group_minmax_delete)
{
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_GROUP);
    n->id = 8;
    n->schema = schema_n(3, "g");
    n->ngroup = 1;
    n->group_cols = calloc(1, sizeof(int));
    n->naggs = 2;
    n->aggs = calloc(2, sizeof *n->aggs);
    n->aggs[0].fn = SS_AGG_MIN;
    n->aggs[0].arg = ex_col(1);
    n->aggs[1].fn = SS_AGG_MAX;
    n->aggs[1].arg = ex_col(1);
    hx_t h;
    hx_open(&h, n, 2, 0);
    ss_zset_t d, want;
    ss_zset_init(&d);
    ss_zset_init(&want);
    for (int64_t i = 1; i <= 5; i++)
        ss_zset_add(&d, mk_row(2, 't', "k", 'i', i * 10), 1);
    hx_step(&h, &d, NULL);
    ss_zset_add(&want, mk_row(3, 't', "k", 'i', (int64_t)10, 'i', (int64_t)50), 1);
    hx_expect(&h, &want, "min/max");
    ss_zset_clear(&d);
    ss_zset_add(&d, mk_row(2, 't', "k", 'i', (int64_t)10), -1);
    ss_zset_add(&d, mk_row(2, 't', "k", 'i', (int64_t)50), -1);
    hx_step(&h, &d, NULL);
    ss_zset_clear(&want);
    ss_zset_add(&want, mk_row(3, 't', "k", 'i', (int64_t)20, 'i', (int64_t)40), 1);
    hx_expect(&h, &want, "min/max after deleting both extremes");
    ss_zset_clear(&d);
    for (int64_t i = 2; i <= 4; i++)
        ss_zset_add(&d, mk_row(2, 't', "k", 'i', i * 10), -1);
    hx_step(&h, &d, NULL);
    ss_zset_clear(&want);
    hx_expect(&h, &want, "group disappears at count 0");
    ss_zset_destroy(&d);
    ss_zset_destroy(&want);
    hx_close(&h);
}
END_TEST

/* ---- top-k ---- */

/* SQL functions for the oracle: the operator breaks ties between rows with equal ORDER BY values by
 * the row's hash, then its encoding (ss_state_row_hash, ss_row_encode). */
static void sql_rowkey(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    ss_row_t *r = ss_row_new(argc);
    for (int i = 0; i < argc; i++) {
        ss_value_t v = ss_val_null();
        switch (sqlite3_value_type(argv[i])) {
        case SQLITE_INTEGER: v = ss_val_int(sqlite3_value_int64(argv[i])); break;
        case SQLITE_FLOAT: v = ss_val_real(sqlite3_value_double(argv[i])); break;
        case SQLITE_TEXT:
            v = ss_val_text_ref((const char *)sqlite3_value_text(argv[i]), (size_t)sqlite3_value_bytes(argv[i]));
            break;
        }
        ss_row_set(r, i, &v);
    }
    ss_buf_t b = SS_BUF_INIT;
    ss_row_encode(r, &b);
    if (sqlite3_user_data(cx))
        sqlite3_result_int64(cx, ss_state_row_hash(b.data, b.len));
    else
        sqlite3_result_blob(cx, b.data, (int)b.len, SQLITE_TRANSIENT);
    ss_buf_free(&b);
    ss_row_free(r);
}

static void topk_case(int it)
{
    rg_t g = {.s = seed_base() + 8000 + (uint64_t)it * 7777, .ncols = 3, .kinds = K3, .int_range = 6};
    ss_plan_node_t *n = node_new(SS_PN_TOPK, 6, 3);
    n->limit = 1 + it % 6;
    n->norder = 1 + it % 2;
    n->order = calloc(2, sizeof *n->order);
    ss_buf_t ob = SS_BUF_INIT;
    for (int i = 0; i < n->norder; i++) {
        int c = rg_int(&g, 5);
        ss_expr_t *e = c == 0 ? ex_col(0) : c == 1 ? ex_col(1) : c == 2 ? ex_col(2)
                     : c == 3 ? ex_fn("LENGTH", 1, ex_col(1)) : ex_bin(SS_OP_ADD, ex_col(0), ex_col(2));
        n->order[i].expr = e;
        n->order[i].desc = rg_int(&g, 2);
        char *s = render(e, n->schema);
        /* equal numbers: INT sorts before REAL (reversed by DESC) */
        ss_buf_printf(&ob, "%s%s, typeof(%s) = 'real'%s, ", s, n->order[i].desc ? " DESC" : "", s,
                      n->order[i].desc ? " DESC" : "");
        free(s);
    }
    char sql[900];
    snprintf(sql, sizeof sql,
             "SELECT c0, c1, c2 FROM t ORDER BY %srowhash(c0, c1, c2), rowenc(c0, c1, c2) LIMIT %lld",
             ss_buf_cstr(&ob), (long long)n->limit);
    ss_buf_free(&ob);
    hx_t h;
    hx_open(&h, n, 3, 0);
    sqlite3_create_function(h.db, "rowhash", -1, SQLITE_UTF8, (void *)1, sql_rowkey, NULL, NULL);
    sqlite3_create_function(h.db, "rowenc", -1, SQLITE_UTF8, NULL, sql_rowkey, NULL, NULL);
    drive(&h, &g, NULL, BATCHES, sql, "top-k");
    hx_close(&h);
}

START_TEST(test_topk_random)
{
    for (int it = 0; it < STREAMS * 2; it++)
        topk_case(it);
}
END_TEST

START_TEST(test_topk_delete_top)
{
    ss_plan_node_t *n = node_new(SS_PN_TOPK, 6, 2);
    n->limit = 2;
    n->norder = 1;
    n->order = calloc(1, sizeof *n->order);
    n->order[0].expr = ex_col(1);
    n->order[0].desc = 1;
    hx_t h;
    hx_open(&h, n, 2, 0);
    ss_zset_t d, want;
    ss_zset_init(&d);
    ss_zset_init(&want);
    for (int64_t i = 1; i <= 5; i++)
        ss_zset_add(&d, mk_row(2, 'i', i, 'i', i * 100), 1);
    hx_step(&h, &d, NULL);
    ss_zset_add(&want, mk_row(2, 'i', (int64_t)5, 'i', (int64_t)500), 1);
    ss_zset_add(&want, mk_row(2, 'i', (int64_t)4, 'i', (int64_t)400), 1);
    hx_expect(&h, &want, "top 2");
    ss_zset_clear(&d);
    ss_zset_add(&d, mk_row(2, 'i', (int64_t)5, 'i', (int64_t)500), -1);
    hx_step(&h, &d, NULL);
    ss_zset_clear(&want);
    ss_zset_add(&want, mk_row(2, 'i', (int64_t)4, 'i', (int64_t)400), 1);
    ss_zset_add(&want, mk_row(2, 'i', (int64_t)3, 'i', (int64_t)300), 1);
    hx_expect(&h, &want, "top row deleted: the next one moves in");
    ss_zset_clear(&d);
    ss_zset_add(&d, mk_row(2, 'i', (int64_t)1, 'i', (int64_t)100), -1); /* below the boundary: no change */
    ss_zset_t o;
    ss_zset_init(&o);
    char err[SS_ERRSZ];
    ck_assert_int_eq(h.op->vt->apply(h.op, &h.ctx, 0, &d, &o, err, sizeof err), SS_OK);
    ck_assert_uint_eq(o.n, 0);
    ss_zset_destroy(&o);
    ss_zset_destroy(&d);
    ss_zset_destroy(&want);
    hx_close(&h);
}
END_TEST

/* ---- source ---- */

/* Oracle of a keyed/unkeyed source: table o(c0, c1, c2, ts) maintained by SQL. */
typedef struct srco {
    sqlite3 *db;
    int keyed, nkeys;
} srco_t;

static void srco_event(srco_t *o, const ss_row_t *r, int64_t w, int64_t ts)
{
    sqlite3_stmt *s;
    const char *del = o->nkeys == 2 ? "DELETE FROM o WHERE c0 IS ?1 AND c1 IS ?2" : "DELETE FROM o WHERE c0 IS ?1";
    if (o->keyed) {
        ck_assert_int_eq(sqlite3_prepare_v2(o->db, del, -1, &s, NULL), SQLITE_OK);
        sql_bind(s, 1, &r->v[0]);
        if (o->nkeys == 2)
            sql_bind(s, 2, &r->v[1]);
        ck_assert_int_eq(sqlite3_step(s), SQLITE_DONE);
        sqlite3_finalize(s);
    } else if (w < 0) {
        ck_assert_int_eq(sqlite3_prepare_v2(o->db,
                                            "DELETE FROM o WHERE rowid = (SELECT rowid FROM o WHERE c0 IS ?1 AND "
                                            "c1 IS ?2 AND c2 IS ?3 ORDER BY rowid LIMIT 1)",
                                            -1, &s, NULL),
                         SQLITE_OK);
        for (int i = 0; i < 3; i++)
            sql_bind(s, i + 1, &r->v[i]);
        ck_assert_int_eq(sqlite3_step(s), SQLITE_DONE);
        sqlite3_finalize(s);
    }
    if (w > 0) {
        ck_assert_int_eq(sqlite3_prepare_v2(o->db, "INSERT INTO o VALUES(?1, ?2, ?3, ?4)", -1, &s, NULL), SQLITE_OK);
        for (int i = 0; i < 3; i++)
            sql_bind(s, i + 1, &r->v[i]);
        if (ts == INT64_MIN)
            sqlite3_bind_null(s, 4);
        else
            sqlite3_bind_int64(s, 4, ts);
        ck_assert_int_eq(sqlite3_step(s), SQLITE_DONE);
        sqlite3_finalize(s);
    }
}

/* Independent reading of a ttl_column value: epoch s or ms (>= 1e11), or ISO-8601 UTC text. */
static int64_t oracle_ts(const ss_value_t *v)
{
    if (v->t == SS_INT)
        return v->u.i >= 100000000000LL ? v->u.i : v->u.i * 1000;
    if (v->t == SS_TEXT) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        if (strptime(v->u.str.s, "%Y-%m-%dT%H:%M:%SZ", &tm))
            return (int64_t)timegm(&tm) * 1000;
    }
    return INT64_MIN;
}

/* mode: 0 keyed on c0, 1 keyed on (c0, c1), 2 unkeyed, 3 keyed + arrival TTL,
 * 4 keyed + ttl_column c2 (epoch s / ms / ISO text), 5 unkeyed + arrival TTL */
static void source_case(int it, int mode)
{
    rg_t g = {.s = seed_base() + 9000 + (uint64_t)it * 3571 + (uint64_t)mode, .ncols = 3, .kinds = K3, .int_range = 5};
    ss_plan_node_t *n = node_new(SS_PN_SOURCE, 11, 3);
    int keyed = mode != 2 && mode != 5;
    if (keyed)
        n->schema->is_key[0] = 1;
    if (mode == 1)
        n->schema->is_key[1] = 1;
    if (mode >= 3)
        node_opt(n, "ttl", mode == 4 ? "1 minute" : "30 s");
    if (mode == 4)
        node_opt(n, "ttl_column", "c2");
    int64_t now = 1700000000000LL;
    ss_state_set_now_ms(now);
    hx_t h;
    hx_open(&h, n, 3, 0);
    srco_t o = {h.db, keyed, mode == 1 ? 2 : 1};
    ck_assert_int_eq(sqlite3_exec(h.db, "CREATE TABLE o(c0, c1, c2, ts)", NULL, NULL, NULL), SQLITE_OK);
    ss_zset_t live;
    ss_zset_init(&live);
    for (int b = 0; b < BATCHES; b++) {
        if (mode >= 3) {
            now += rg_int(&g, 15000);
            ss_state_set_now_ms(now);
        }
        ss_zset_t d;
        ss_zset_init(&d);
        int nev = rg_pct(&g, 10) ? 0 : 1 + rg_int(&g, 6);
        for (int e = 0; e < nev; e++) {
            ss_row_t *r = rg_row(&g);
            int64_t ts = now;
            if (mode == 4) { /* time column: seconds, ms or ISO text, up to 90 s old, or NULL */
                int64_t sec = now / 1000 - rg_int(&g, 90);
                ss_value_t tv;
                char iso[40];
                int rep = rg_int(&g, 4);
                if (rep == 0)
                    tv = ss_val_int(sec);
                else if (rep == 1)
                    tv = ss_val_int(sec * 1000);
                else if (rep == 2) {
                    time_t tt = (time_t)sec;
                    struct tm tm;
                    gmtime_r(&tt, &tm);
                    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
                    tv = ss_val_text_ref(iso, strlen(iso));
                } else
                    tv = ss_val_null();
                ss_row_set(r, 2, &tv);
                ts = rep == 3 ? INT64_MIN : sec * 1000;
            }
            int64_t w = 1;
            if (!keyed && live.n && rg_pct(&g, 35)) { /* unkeyed: delete a live row (sometimes an absent one) */
                ss_row_free(r);
                r = ss_row_copy(live.e[rg_int(&g, (int)live.n)].row);
                w = -1;
                if (mode == 2) {
                    ss_zset_add_copy(&live, r, -1);
                    ss_zset_consolidate(&live);
                }
            } else if (keyed && rg_pct(&g, 30))
                w = -1; /* keyed delete: the key may or may not exist */
            else if (keyed && rg_pct(&g, 10) && h.out.n) { /* identical upsert */
                ss_row_free(r);
                r = ss_row_copy(h.out.e[rg_int(&g, (int)h.out.n)].row);
                ts = mode == 4 ? oracle_ts(&r->v[2]) : now;
            } else if (mode == 2 || mode == 5) {
                ss_zset_add_copy(&live, r, 1);
                ss_zset_consolidate(&live);
            }
            srco_event(&o, r, w, ts);
            ss_zset_add(&d, r, w);
        }
        hx_step(&h, &d, NULL);
        ss_zset_destroy(&d);
        if (mode >= 3) {
            char q[128];
            snprintf(q, sizeof q, "DELETE FROM o WHERE ts < %lld", (long long)(now - (mode == 4 ? 60000 : 30000)));
            ck_assert_int_eq(sqlite3_exec(h.db, q, NULL, NULL, NULL), SQLITE_OK);
        }
        ss_zset_t want;
        ss_zset_init(&want);
        ck_assert_int_eq(sql_query(h.db, "SELECT c0, c1, c2 FROM o", &want), 0);
        hx_expect(&h, &want, "source");
        if (keyed || mode == 5) { /* snapshot of the source state equals its integrated output */
            ss_zset_t snap;
            ss_zset_init(&snap);
            char err[SS_ERRSZ];
            ck_assert_int_eq(h.op->vt->snapshot(h.op, &h.ctx, &snap, err, sizeof err), SS_OK);
            ck_assert(ss_zset_equal(&snap, &h.out));
            ss_zset_destroy(&snap);
        }
        ss_zset_destroy(&want);
        if (mode == 5) { /* live mirrors the oracle's rows */
            ss_zset_clear(&live);
            sql_query(h.db, "SELECT c0, c1, c2 FROM o", &live);
            ss_zset_consolidate(&live);
        }
    }
    ss_zset_destroy(&live);
    hx_close(&h);
    ss_state_set_now_ms(0);
}

START_TEST(test_source_random)
{
    for (int it = 0; it < STREAMS / 2; it++)
        for (int mode = 0; mode < 6; mode++)
            source_case(it, mode);
}
END_TEST

START_TEST(test_source_ttl_tick)
{
    ss_plan_node_t *n = node_new(SS_PN_SOURCE, 12, 2);
    n->schema->is_key[0] = 1;
    node_opt(n, "ttl", "5 minutes");
    ss_state_set_now_ms(1000000);
    hx_t h;
    hx_open(&h, n, 2, 0);
    ss_zset_t d, want;
    ss_zset_init(&d);
    ss_zset_init(&want);
    ss_zset_add(&d, mk_row(2, 'i', (int64_t)1, 't', "a"), 1);
    hx_step(&h, &d, NULL);
    ss_zset_add(&want, mk_row(2, 'i', (int64_t)1, 't', "a"), 1);
    hx_expect(&h, &want, "inserted");
    ss_zset_clear(&d);
    ss_state_set_now_ms(1000000 + 5 * 60000); /* exactly ttl old: kept */
    hx_step(&h, &d, NULL);
    hx_expect(&h, &want, "not yet expired");
    ss_state_set_now_ms(1000000 + 5 * 60000 + 1); /* an empty tick expires it */
    hx_step(&h, &d, NULL);
    ss_zset_clear(&want);
    hx_expect(&h, &want, "expired on an empty tick");
    ss_state_set_now_ms(0);
    ss_zset_destroy(&d);
    ss_zset_destroy(&want);
    hx_close(&h);
    /* bad options are reported at init */
    ss_plan_node_t *b = node_new(SS_PN_SOURCE, 13, 2);
    node_opt(b, "ttl", "5 fortnights");
    ss_op_t *op;
    char err[SS_ERRSZ] = "";
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
    sqlite3_exec(db, "PRAGMA case_sensitive_like = ON", NULL, NULL, NULL);
    ss_op_ctx_t ctx = {db, NULL, NULL};
    ck_assert_int_eq(ss_op_new(b, &op, err, sizeof err), SS_OK);
    ck_assert_int_eq(op->vt->init(op, &ctx, err, sizeof err), SS_ERR_INVALID);
    ck_assert_msg(strstr(err, "bad ttl") != NULL, "%s", err);
    ss_op_destroy(op);
    ss_plan_node_free(b);
    sqlite3_close(db);
}
END_TEST

/* ---- chain: source -> filter -> project -> group -> view ---- */
START_TEST(test_chain)
{
    for (int it = 0; it < STREAMS / 2; it++) {
        rg_t g = {.s = seed_base() + 12000 + (uint64_t)it * 6007, .ncols = 3, .kinds = K3, .int_range = 8};
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
        sqlite3_exec(db, "PRAGMA case_sensitive_like = ON", NULL, NULL, NULL);
        ss_op_ctx_t ctx = {db, NULL, NULL};
        ss_plan_node_t *src = node_new(SS_PN_SOURCE, 1, 3);
        src->schema->is_key[0] = 1;
        ss_plan_node_t *flt = node_new(SS_PN_FILTER, 2, 3);
        flt->pred = rg_bool_expr(&g, 2);
        ss_plan_node_t *prj = node_new(SS_PN_PROJECT, 3, 2);
        prj->nexprs = 2;
        prj->exprs = calloc(2, sizeof *prj->exprs);
        prj->exprs[0] = rg_pct(&g, 50) ? ex_fn("LOWER", 1, ex_col(1)) : ex_bin(SS_OP_CONCAT, ex_col(1), ex_text("!"));
        prj->exprs[1] = rg_pct(&g, 50) ? ex_bin(SS_OP_ADD, ex_col(0), ex_col(2)) : ex_col(2);
        ss_plan_node_t *grp = ss_plan_node_new(SS_PN_GROUP);
        grp->id = 4;
        grp->schema = schema_n(5, "g");
        grp->ngroup = 1;
        grp->group_cols = calloc(1, sizeof(int));
        grp->naggs = 4;
        grp->aggs = calloc(4, sizeof *grp->aggs);
        ss_agg_fn_t fns[4] = {SS_AGG_COUNT, SS_AGG_SUM, SS_AGG_MIN, SS_AGG_MAX};
        for (int i = 0; i < 4; i++) {
            grp->aggs[i].fn = fns[i];
            grp->aggs[i].arg = i ? ex_col(1) : NULL;
        }
        ss_plan_node_t *view = ss_plan_node_new(SS_PN_VIEW);
        view->id = 5;
        view->label = ss_strdup("chain");
        view->schema = schema_n(5, "g");
        ss_plan_node_t *nodes[5] = {src, flt, prj, grp, view};
        ss_op_t *ops[5];
        char err[SS_ERRSZ] = "";
        for (int i = 0; i < 5; i++) {
            ck_assert_int_eq(ss_op_new(nodes[i], &ops[i], err, sizeof err), SS_OK);
            ck_assert_msg(ops[i]->vt->init(ops[i], &ctx, err, sizeof err) == SS_OK, "%s", err);
        }
        ss_schema_t *in = schema_n(3, "c");
        char *p = render(flt->pred, in), *e0 = render(prj->exprs[0], in), *e1 = render(prj->exprs[1], in);
        char sql[2048];
        snprintf(sql, sizeof sql,
                 "SELECT p0, COUNT(*), SUM(p1), MIN(p1), MAX(p1) FROM (SELECT %s AS p0, %s AS p1 FROM o WHERE %s) "
                 "GROUP BY p0",
                 e0, e1, p);
        srco_t o = {db, 1, 1};
        ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE o(c0, c1, c2, ts)", NULL, NULL, NULL), SQLITE_OK);
        ss_zset_t integ;
        ss_zset_init(&integ);
        for (int b = 0; b < BATCHES; b++) {
            ss_zset_t d[6];
            for (int i = 0; i < 6; i++)
                ss_zset_init(&d[i]);
            int nev = 1 + rg_int(&g, 8);
            for (int e = 0; e < nev; e++) {
                ss_row_t *r = rg_row(&g);
                int64_t w = rg_pct(&g, 25) ? -1 : 1;
                srco_event(&o, r, w, 0);
                ss_zset_add(&d[0], r, w);
            }
            ck_assert_int_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
            for (int i = 0; i < 5; i++)
                ck_assert_msg(ops[i]->vt->apply(ops[i], &ctx, 0, &d[i], &d[i + 1], err, sizeof err) == SS_OK, "%s",
                              err);
            ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
            ss_zset_extend(&integ, &d[5], 1);
            ss_zset_consolidate(&integ);
            ss_zset_t want, snap;
            ss_zset_init(&want);
            ss_zset_init(&snap);
            ck_assert_int_eq(sql_query(db, sql, &want), 0);
            ck_assert_msg(zset_close(&integ, &want), "chain batch %d: %s\n--- got\n%s--- want\n%s", b, sql,
                          zset_str(&integ), zset_str(&want));
            ck_assert_int_eq(ops[4]->vt->snapshot(ops[4], &ctx, &snap, err, sizeof err), SS_OK);
            ck_assert(ss_zset_equal(&snap, &integ));
            ss_zset_destroy(&want);
            ss_zset_destroy(&snap);
            for (int i = 0; i < 6; i++)
                ss_zset_destroy(&d[i]);
        }
        /* snapshots answer from SQLite directly */
        sqlite3_stmt *q;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT coalesce(sum(_mult), 0) FROM view_chain", -1, &q, NULL),
                         SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int64(q, 0), (int64_t)integ.n);
        sqlite3_finalize(q);
        ss_zset_destroy(&integ);
        free(p);
        free(e0);
        free(e1);
        ss_schema_free(in);
        for (int i = 0; i < 5; i++) {
            ss_op_destroy(ops[i]);
            ss_plan_node_free(nodes[i]);
        }
        sqlite3_close(db);
    }
}
END_TEST

/* The view table: typed columns, duplicates as _mult, exact values in _row. */
START_TEST(test_view_table)
{
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_VIEW);
    n->id = 1;
    n->label = ss_strdup("prices");
    n->schema = ss_schema_new(2);
    ss_schema_set(n->schema, 0, "name", SS_COL_TEXT, 0);
    ss_schema_set(n->schema, 1, "price", SS_COL_REAL, 0);
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
    sqlite3_exec(db, "PRAGMA case_sensitive_like = ON", NULL, NULL, NULL);
    ss_op_ctx_t ctx = {db, NULL, NULL};
    ss_op_t *op;
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_op_new(n, &op, err, sizeof err), SS_OK);
    ck_assert_int_eq(op->vt->init(op, &ctx, err, sizeof err), SS_OK);
    ss_zset_t d, o, snap;
    ss_zset_init(&d);
    ss_zset_init(&o);
    ss_zset_init(&snap);
    ss_zset_add(&d, mk_row(2, 't', "tea", 'i', (int64_t)3), 2);
    ss_zset_add(&d, mk_row(2, 't', "cake", 'r', 4.5), 1);
    ck_assert_int_eq(op->vt->apply(op, &ctx, 0, &d, &o, err, sizeof err), SS_OK);
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT name, price, _mult FROM view_prices ORDER BY name", -1, &q, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "cake");
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_type(q, 1), SQLITE_FLOAT); /* REAL column */
    ck_assert_int_eq(sqlite3_column_int64(q, 2), 2);
    sqlite3_finalize(q);
    ck_assert_int_eq(op->vt->snapshot(op, &ctx, &snap, err, sizeof err), SS_OK);
    ck_assert(ss_zset_equal(&snap, &d)); /* exact values (INT 3) come back from _row */
    ss_zset_destroy(&d);
    ss_zset_destroy(&o);
    ss_zset_destroy(&snap);
    ss_op_destroy(op);
    ss_plan_node_free(n);
    sqlite3_close(db);
}
END_TEST

/* Applies one change (row, w) to a view op. */
static void view_apply1(ss_op_t *op, ss_op_ctx_t *ctx, ss_row_t *r, int64_t w)
{
    char err[SS_ERRSZ];
    ss_zset_t d, o;
    ss_zset_init(&d);
    ss_zset_init(&o);
    ss_zset_add(&d, r, w);
    ck_assert_msg(op->vt->apply(op, ctx, 0, &d, &o, err, sizeof err) == SS_OK, "%s", err);
    ss_zset_destroy(&d);
    ss_zset_destroy(&o);
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* The table is WITHOUT ROWID, clustered on (_k, _row) with _k the sort key of
 * the KEY columns (else the first column); a table of the older layout (rowid,
 * _row BLOB PRIMARY KEY) created by an earlier version keeps working. Both get
 * the same sequence: inserts, a duplicate, a removal to 0, a negative count. */
START_TEST(test_view_layouts)
{
    /* a table of an older layout is refused with a clear message, never misread */
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_VIEW);
    n->id = 1;
    n->label = ss_strdup("lay");
    n->schema = ss_schema_new(4);
    ss_schema_set(n->schema, 0, "id", SS_COL_INT, 0);
    ss_schema_set(n->schema, 1, "_mult", SS_COL_TEXT, 0); /* user columns named like internal ones */
    ss_schema_set(n->schema, 2, "_h", SS_COL_REAL, 0);
    ss_schema_set(n->schema, 3, "_x", SS_COL_ANY, 0);
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
    sqlite3_exec(db, "PRAGMA case_sensitive_like = ON", NULL, NULL, NULL);
    ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE view_lay(id INTEGER, s TEXT, _mult INTEGER NOT NULL,"
                                      " _row BLOB PRIMARY KEY)", NULL, NULL, NULL), SQLITE_OK);
    ss_op_ctx_t ctx = {db, NULL, NULL};
    ss_op_t *op;
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_op_new(n, &op, err, sizeof err), SS_OK);
    ck_assert_int_eq(op->vt->init(op, &ctx, err, sizeof err), SS_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(err, "drop and re-create the view") != NULL, "%s", err);
    ss_op_destroy(op);
    ck_assert_int_eq(sqlite3_exec(db, "DROP TABLE view_lay", NULL, NULL, NULL), SQLITE_OK);

    ck_assert_int_eq(ss_op_new(n, &op, err, sizeof err), SS_OK);
    ck_assert_msg(op->vt->init(op, &ctx, err, sizeof err) == SS_OK, "%s", err);
    char nm[64];
    ck_assert_str_eq(ss_view_internal(n->schema, "_mult", nm, sizeof nm), "_mult_");
    ck_assert_str_eq(ss_view_internal(n->schema, "_k", nm, sizeof nm), "_k");
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM pragma_table_info('view_lay') WHERE name IN "
                               "('_id', '_mult_', '_k', '_h_', '_x_')"), 5);
    for (int i = 3; i >= 1; i--)
        view_apply1(op, &ctx, mk_row(4, 'i', (int64_t)i, 't', "x", 'r', 0.5, 'n'), 1);
    view_apply1(op, &ctx, mk_row(4, 'i', (int64_t)2, 't', "x", 'r', 0.5, 'n'), 2);  /* id 2: 3 copies */
    view_apply1(op, &ctx, mk_row(4, 'i', (int64_t)3, 't', "x", 'r', 0.5, 'n'), -1); /* id 3: gone */
    view_apply1(op, &ctx, mk_row(4, 'r', 1.0, 't', "x", 'i', (int64_t)7, 't', "12"), 1); /* REAL 1.0 is not INT 1 */
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM view_lay"), 3);
    ck_assert_int_eq(q_int(db, "SELECT _mult_ FROM view_lay WHERE id = 2"), 3);
    ck_assert_int_eq(q_int(db, "SELECT sum(_mult_) FROM view_lay WHERE id = 1"), 2);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM view_lay WHERE id = 3"), 0);
    /* only the row the typed columns cannot give back keeps its exact encoding */
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM view_lay WHERE _x_ IS NOT NULL"), 1);
    ss_zset_t snap, want;
    ss_zset_init(&snap);
    ss_zset_init(&want);
    ss_zset_add(&want, mk_row(4, 'i', (int64_t)1, 't', "x", 'r', 0.5, 'n'), 1);
    ss_zset_add(&want, mk_row(4, 'r', 1.0, 't', "x", 'i', (int64_t)7, 't', "12"), 1);
    ss_zset_add(&want, mk_row(4, 'i', (int64_t)2, 't', "x", 'r', 0.5, 'n'), 3);
    ck_assert_int_eq(op->vt->snapshot(op, &ctx, &snap, err, sizeof err), SS_OK);
    ck_assert(ss_zset_equal(&snap, &want));
    for (size_t i = 0; i < snap.n; i++) /* exact types, not SQLite's affinity conversions */
        for (int c = 0; c < 4; c++) {
            size_t j = 0;
            while (j < want.n && ss_row_cmp(want.e[j].row, snap.e[i].row))
                j++;
            ck_assert_int_eq(snap.e[i].row->v[c].t, want.e[j].row->v[c].t);
        }
    ss_zset_destroy(&snap);
    ss_zset_destroy(&want);
    ss_op_destroy(op);
    ss_plan_node_free(n);
    sqlite3_close(db);
}
END_TEST

/* Applies rows [from, to) (one INT column, plus TEXT "r<i>") with weight w to a view op in one batch. */
static void view_apply_range(ss_op_t *op, ss_op_ctx_t *ctx, int from, int to, int64_t w)
{
    char err[SS_ERRSZ], t[32];
    ss_zset_t d, o;
    ss_zset_init(&d);
    ss_zset_init(&o);
    for (int i = from; i < to; i++) {
        snprintf(t, sizeof t, "r%d", i);
        ss_zset_add(&d, mk_row(2, 'i', (int64_t)(i % 97), 't', t), w);
    }
    ck_assert_msg(op->vt->apply(op, ctx, 0, &d, &o, err, sizeof err) == SS_OK, "%s", err);
    ss_zset_destroy(&d);
    ss_zset_destroy(&o);
}

/* The view's seen filter (insertions of never-seen rows skip the lookup) must never lose a
 * row: rows already in the table merge into their _mult across its growth (rebuilds past
 * 4,096 hashes), a rolled-back batch, deletes, and a re-created operator. */
START_TEST(test_view_seen_filter)
{
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_VIEW);
    n->id = 1;
    n->label = ss_strdup("seen");
    n->schema = ss_schema_new(2);
    ss_schema_set(n->schema, 0, "g", SS_COL_INT, 0);
    ss_schema_set(n->schema, 1, "t", SS_COL_TEXT, 0);
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
    ss_op_ctx_t ctx = {db, NULL, NULL};
    ss_op_t *op;
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_op_new(n, &op, err, sizeof err), SS_OK);
    ck_assert_msg(op->vt->init(op, &ctx, err, sizeof err) == SS_OK, "%s", err);
    for (int b = 0; b < 10; b++) /* 10,000 distinct rows in ten batches: the filter grows twice */
        view_apply_range(op, &ctx, b * 1000, b * 1000 + 1000, 1);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL); /* a batch that rolls back leaves stale hashes */
    view_apply_range(op, &ctx, 10000, 12000, 1);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    view_apply_range(op, &ctx, 0, 12000, 1); /* 10,000 second copies and 2,000 first ones */
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM view_seen"), 12000);
    ck_assert_int_eq(q_int(db, "SELECT sum(_mult) FROM view_seen"), 22000);
    view_apply_range(op, &ctx, 0, 6000, -2); /* rows 0..5999 gone */
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM view_seen"), 6000);
    ss_op_destroy(op); /* a restart: the filter is rebuilt from the table */
    ck_assert_int_eq(ss_op_new(n, &op, err, sizeof err), SS_OK);
    ck_assert_msg(op->vt->init(op, &ctx, err, sizeof err) == SS_OK, "%s", err);
    view_apply_range(op, &ctx, 3000, 9000, 1); /* 3,000 new, 3,000 merged */
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM view_seen"), 9000);
    ck_assert_int_eq(q_int(db, "SELECT sum(_mult) FROM view_seen"), 6000 + 4000 + 6000);
    ck_assert_int_eq(q_int(db, "SELECT count(*) FROM (SELECT g, t FROM view_seen GROUP BY g, t HAVING count(*) > 1)"),
                     0);
    ss_op_destroy(op);
    ss_plan_node_free(n);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_state_sortkey)
{
    /* memcmp order of sort keys equals ss_val_cmp order */
    rg_t g = {.s = seed_base() + 77, .ncols = 3, .kinds = K3, .int_range = 5};
    for (int i = 0; i < 2000; i++) {
        ss_value_t a = rg_value(&g, rg_int(&g, 3)), b = rg_value(&g, rg_int(&g, 3));
        if (rg_pct(&g, 10))
            a = ss_val_int((int64_t)(rg_next(&g) >> 1) * (rg_pct(&g, 50) ? 1 : -1));
        ss_buf_t x = SS_BUF_INIT, y = SS_BUF_INIT;
        int desc = rg_int(&g, 2);
        ss_state_sortkey(&x, &a, desc);
        ss_state_sortkey(&y, &b, desc);
        size_t n = SS_MIN(x.len, y.len);
        int c = memcmp(x.data, y.data, n);
        if (!c)
            c = x.len < y.len ? -1 : x.len > y.len;
        int want = ss_val_cmp(&a, &b);
        if (desc)
            want = -want;
        ck_assert_int_eq(c < 0 ? -1 : c > 0, want);
        ss_buf_free(&x);
        ss_buf_free(&y);
    }
}
END_TEST

Suite *check_relational_suite(void)
{
    Suite *s = suite_create("relational");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_state_sortkey);
    tcase_add_test(tc, test_view_table);
    tcase_add_test(tc, test_view_layouts);
    tcase_add_test(tc, test_view_seen_filter);
    tcase_add_test(tc, test_filter_random);
    tcase_add_test(tc, test_project_random);
    tcase_add_test(tc, test_union_random);
    tcase_add_test(tc, test_distinct_random);
    tcase_add_test(tc, test_join_inner_random);
    tcase_add_test(tc, test_join_left_random);
    tcase_add_test(tc, test_join_left_retract);
    tcase_add_test(tc, test_group_random);
    tcase_add_test(tc, test_group_minmax_delete);
    tcase_add_test(tc, test_topk_random);
    tcase_add_test(tc, test_topk_delete_top);
    tcase_add_test(tc, test_source_random);
    tcase_add_test(tc, test_source_ttl_tick);
    tcase_add_test(tc, test_chain);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    return s;
}
