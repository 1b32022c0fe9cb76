/*
 * check_queryops.c — the query structures (set operations, WITH, FROM
 * subqueries, outer/cross/USING joins, IN / EXISTS / scalar subqueries,
 * OFFSET, window functions, aggregates) end to end through the real parser,
 * catalog, planner and operators, without Kafka: random histories of upserts
 * (new keys and updates), deletes (also of absent keys) and NULLs on two keyed
 * streams run in random micro-batches, each in one transaction on an
 * in-memory SQLite; some batches are rolled back (no trace may remain) and the
 * operators are re-created on the same database mid-way (a restart). After
 * every batch each view's table must equal SQLite running the view's SQL (or
 * an equivalent oracle query where SQLite lacks the construct) over the
 * streams' current rows. SS_TEST_SEED=n shifts the seeds.
 */
#pragma GCC diagnostic ignored "-Wunused-function" /* relgen.h's expression generators */
#include "relgen.h"
#include "ss_catalog.h"
#include "ss_op.h"
#include "testutil.h"

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 10

static const char *const STREAMS_SQL =
    "CREATE STREAM a (id INT KEY, g TEXT, x INT, y REAL);"
    "CREATE STREAM b (id INT KEY, g TEXT, x INT, y REAL);";

typedef struct qcase {
    const char *name;
    const char *sql;    /* the view's query */
    const char *oracle; /* SQLite query with the same result, or NULL: sql itself */
} qcase_t;

/* ---- a small pipeline: catalog + plan + operators on one database ---- */
typedef struct mini {
    sqlite3 *db, *oracle;
    ss_catalog_t *cat;
    ss_plan_t *plan;
    ss_op_t **ops;
    ss_zset_t *outs;
    ss_op_ctx_t ctx;
    ss_row_t *live[2][NKEYS]; /* current row of each key of a and b (NULL: absent) */
    int batches;
} mini_t;

static void exec_script(mini_t *m, const char *sql)
{
    ss_ast_script_t *sc = NULL;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_parse(sql, strlen(sql), NULL, &sc, err, sizeof err) == SS_OK, "%s", err);
    for (int i = 0; i < sc->n; i++) {
        const ss_ast_stmt_t *st = sc->stmts[i];
        int rc = st->kind == SS_STMT_CREATE_STREAM ? ss_catalog_add_stream(m->cat, st, err, sizeof err)
                                                   : ss_catalog_add_view(m->cat, st, err, sizeof err);
        ck_assert_msg(rc == SS_OK, "[%s]: %s", st->text, err);
    }
    ss_ast_script_free(sc);
}

static void mini_ops(mini_t *m)
{
    char err[SS_ERRSZ] = "";
    for (int i = 0; i < m->plan->n; i++) {
        ck_assert_msg(ss_op_new(m->plan->nodes[i], &m->ops[i], err, sizeof err) == SS_OK, "%s", err);
        ck_assert_msg(m->ops[i]->vt->init(m->ops[i], &m->ctx, err, sizeof err) == SS_OK, "node %d: %s",
                      m->plan->nodes[i]->id, err);
    }
}

static int node_pos(const ss_plan_t *p, const ss_plan_node_t *n)
{
    for (int i = 0; i < p->n; i++)
        if (p->nodes[i] == n)
            return i;
    return -1;
}

static void mini_open(mini_t *m, const char *view_sql)
{
    memset(m, 0, sizeof *m);
    char err[SS_ERRSZ] = "";
    ck_assert_int_eq(sqlite3_open(":memory:", &m->db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_open(":memory:", &m->oracle), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(m->oracle, "CREATE TABLE a(id INTEGER, g TEXT, x INTEGER, y REAL);"
                                             "CREATE TABLE b(id INTEGER, g TEXT, x INTEGER, y REAL);",
                                  NULL, NULL, NULL), SQLITE_OK);
    m->ctx.db = m->db;
    ck_assert_msg(ss_catalog_open(m->db, &m->cat, err, sizeof err) == SS_OK, "%s", err);
    exec_script(m, STREAMS_SQL);
    char *v = ss_sprintf("CREATE VIEW v AS %s", view_sql);
    exec_script(m, v);
    free(v);
    ck_assert_msg(ss_plan_build(m->cat, &m->plan, err, sizeof err) == SS_OK, "%s", err);
    m->ops = calloc((size_t)m->plan->n, sizeof *m->ops);
    m->outs = calloc((size_t)m->plan->n, sizeof *m->outs);
    for (int i = 0; i < m->plan->n; i++)
        ss_zset_init(&m->outs[i]);
    mini_ops(m);
    /* as the engine does, every new operator is applied once (a global aggregate's row exists
     * before any input), its output passed on */
    ck_assert_int_eq(sqlite3_exec(m->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    ss_zset_t empty;
    ss_zset_init(&empty);
    for (int i = 0; i < m->plan->n; i++) {
        const ss_plan_node_t *n = m->plan->nodes[i];
        int rc = SS_OK;
        for (int p = 0; !rc && p < (n->nin ? n->nin : 1); p++) {
            int j = n->nin ? node_pos(m->plan, n->in[p]) : -1;
            rc = m->ops[i]->vt->apply(m->ops[i], &m->ctx, p, j >= 0 && m->outs[j].n ? &m->outs[j] : &empty,
                                      &m->outs[i], err, sizeof err);
        }
        ck_assert_msg(rc == SS_OK, "node %d: %s", n->id, err);
        ss_zset_consolidate(&m->outs[i]);
    }
    ck_assert_int_eq(sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < m->plan->n; i++)
        ss_zset_clear(&m->outs[i]);
}

static void mini_drop_ops(mini_t *m)
{
    for (int i = 0; i < m->plan->n; i++) {
        ss_op_destroy(m->ops[i]);
        m->ops[i] = NULL;
    }
}

static void mini_close(mini_t *m)
{
    mini_drop_ops(m);
    for (int i = 0; i < m->plan->n; i++)
        ss_zset_destroy(&m->outs[i]);
    free(m->ops);
    free(m->outs);
    ss_plan_free(m->plan);
    ss_catalog_close(m->cat);
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < NKEYS; k++)
            ss_row_free(m->live[s][k]);
    sqlite3_close(m->db);
    sqlite3_close(m->oracle);
}

/* One micro-batch: ev[s] are stream s's events in arrival order (+1 upsert, -1 delete). */
static void mini_step(mini_t *m, ss_zset_t ev[2], int rollback)
{
    char err[SS_ERRSZ] = "";
    ck_assert_int_eq(sqlite3_exec(m->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < m->plan->n; i++) {
        const ss_plan_node_t *n = m->plan->nodes[i];
        ss_op_t *op = m->ops[i];
        int rc = SS_OK;
        if (n->kind == SS_PN_SOURCE) {
            rc = op->vt->apply(op, &m->ctx, 0, &ev[n->label[0] == 'b'], &m->outs[i], err, sizeof err);
        } else {
            for (int p = 0; !rc && p < n->nin; p++) {
                int j = node_pos(m->plan, n->in[p]);
                if (m->outs[j].n)
                    rc = op->vt->apply(op, &m->ctx, p, &m->outs[j], &m->outs[i], err, sizeof err);
            }
        }
        ck_assert_msg(rc == SS_OK, "node %d (%s): %s", n->id, op->vt->name, err);
        ck_assert_int_eq(ss_zset_consolidate(&m->outs[i]), SS_OK);
    }
    ck_assert_int_eq(sqlite3_exec(m->db, rollback ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < m->plan->n; i++)
        ss_zset_clear(&m->outs[i]);
    m->batches += !rollback;
}

/* ---- random histories ---- */
static const char *const GS[] = {"p", "q", "r", "P"};

static ss_row_t *random_row(rg_t *g, int64_t id)
{
    ss_row_t *r = ss_row_new(4);
    r->v[0] = ss_val_int(id);
    if (!rg_pct(g, 12)) {
        const char *s = GS[rg_int(g, 4)];
        ss_value_t t = ss_val_text_ref(s, strlen(s));
        ss_row_set(r, 1, &t);
    }
    if (!rg_pct(g, 12))
        r->v[2] = ss_val_int(rg_int(g, 6));
    if (!rg_pct(g, 12))
        r->v[3] = ss_val_real((double)(rg_int(g, 9) - 2) * 0.5);
    return r;
}

/* Appends n random events of stream s to ev and applies them to the live rows. */
static void random_events(mini_t *m, rg_t *g, int s, int n, ss_zset_t *ev)
{
    for (int e = 0; e < n; e++) {
        int k = rg_int(g, NKEYS);
        if (rg_pct(g, 70)) {
            ss_row_t *r = random_row(g, k);
            ss_zset_add_copy(ev, r, 1);
            ss_row_free(m->live[s][k]);
            m->live[s][k] = r;
        } else { /* a delete, maybe of an absent key */
            ss_row_t *r = ss_row_new(4);
            r->v[0] = ss_val_int(k);
            ss_zset_add(ev, r, -1);
            ss_row_free(m->live[s][k]);
            m->live[s][k] = NULL;
        }
    }
}

static void load_oracle(mini_t *m)
{
    ck_assert_int_eq(sqlite3_exec(m->oracle, "DELETE FROM a; DELETE FROM b", NULL, NULL, NULL), SQLITE_OK);
    for (int s = 0; s < 2; s++) {
        sqlite3_stmt *q;
        ck_assert_int_eq(sqlite3_prepare_v2(m->oracle, s ? "INSERT INTO b VALUES(?1, ?2, ?3, ?4)"
                                                         : "INSERT INTO a VALUES(?1, ?2, ?3, ?4)",
                                            -1, &q, NULL), SQLITE_OK);
        for (int k = 0; k < NKEYS; k++) {
            if (!m->live[s][k])
                continue;
            for (int c = 0; c < 4; c++)
                sql_bind(q, c + 1, &m->live[s][k]->v[c]);
            ck_assert_int_eq(sqlite3_step(q), SQLITE_DONE);
            sqlite3_reset(q);
        }
        sqlite3_finalize(q);
    }
}

/* Integral REALs as INTs (SQLite keeps a UNION's operand types where PostgreSQL and we unify
 * them, so 2 and 2.0 compare as one value), JSON as text. */
static void numeric_normal(ss_zset_t *z)
{
    for (size_t i = 0; i < z->n; i++)
        for (int c = 0; c < z->e[i].row->n; c++) {
            ss_value_t *v = &z->e[i].row->v[c];
            if (v->t == SS_REAL && v->u.r == (double)(int64_t)v->u.r)
                *v = ss_val_int((int64_t)v->u.r);
            else if (v->t == SS_JSON) /* SQLite's JSON is text */
                v->t = SS_TEXT;
        }
    z->consolidated = 0;
}

static void check_view(mini_t *m, const qcase_t *c)
{
    char err[SS_ERRSZ] = "";
    ss_zset_t got, want;
    ss_zset_init(&got);
    ss_zset_init(&want);
    int vi = m->plan->n - 1;
    while (vi >= 0 && m->plan->nodes[vi]->kind != SS_PN_VIEW)
        vi--;
    ck_assert_msg(m->ops[vi]->vt->snapshot(m->ops[vi], &m->ctx, &got, err, sizeof err) == SS_OK, "%s", err);
    load_oracle(m);
    ck_assert_int_eq(sql_query(m->oracle, c->oracle ? c->oracle : c->sql, &want), 0);
    numeric_normal(&got);
    numeric_normal(&want);
    if (!zset_close(&got, &want)) {
        ss_buf_t ex = SS_BUF_INIT;
        ss_explain(m->plan, "v", &ex);
        char *a = zset_str(&got), *b = zset_str(&want);
        ck_abort_msg("%s after batch %d: view differs from SQLite\n  %s\n--- view\n%s--- SQLite\n%s--- plan\n%s",
                     c->name, m->batches, c->sql, a, b, ss_buf_cstr(&ex));
    }
    ss_zset_destroy(&got);
    ss_zset_destroy(&want);
}

static uint64_t seed_base(void)
{
    const char *e = getenv("SS_TEST_SEED");
    return e ? (uint64_t)strtoull(e, NULL, 10) * 1000003ULL : 0;
}

/* nrun histories of nbatch batches each for one case. */
static void run_case(const qcase_t *c, uint64_t seed, int nrun, int nbatch)
{
    for (int run = 0; run < nrun; run++) {
        rg_t g = {.s = seed_base() + seed * 7919 + (uint64_t)run * 104729 + 1};
        mini_t m;
        mini_open(&m, c->sql);
        for (int b = 0; b < nbatch; b++) {
            ss_zset_t ev[2];
            ss_zset_init(&ev[0]);
            ss_zset_init(&ev[1]);
            int big = rg_pct(&g, 15); /* sometimes a large batch */
            for (int s = 0; s < 2; s++)
                if (rg_pct(&g, 70))
                    random_events(&m, &g, s, big ? 12 : 1 + rg_int(&g, 4), &ev[s]);
            if (rg_pct(&g, 5)) /* a batch rolled back leaves no trace; the same events then commit */
                mini_step(&m, ev, 1);
            if (rg_pct(&g, 5)) { /* restart: operators re-created on the same state */
                mini_drop_ops(&m);
                mini_ops(&m);
            }
            mini_step(&m, ev, 0);
            check_view(&m, c);
            ss_zset_destroy(&ev[0]);
            ss_zset_destroy(&ev[1]);
        }
        mini_close(&m);
    }
}

/* ---- the cases ---- */
static const qcase_t CASES[] = {
    /* set operations */
    {"union", "SELECT g FROM a UNION SELECT g FROM b", NULL},
    {"union all", "SELECT g, x FROM a UNION ALL SELECT g, x FROM b", NULL},
    {"union int/real", "SELECT x FROM a UNION SELECT y FROM b", NULL},
    {"except", "SELECT g, x FROM a EXCEPT SELECT g, x FROM b", NULL},
    {"intersect", "SELECT x FROM a INTERSECT SELECT x FROM b", NULL},
    {"except all", "SELECT g FROM a EXCEPT ALL SELECT g FROM b",
     "SELECT g FROM (SELECT g, ROW_NUMBER() OVER (PARTITION BY g) FROM a "
     "EXCEPT SELECT g, ROW_NUMBER() OVER (PARTITION BY g) FROM b)"},
    {"intersect all", "SELECT x FROM a INTERSECT ALL SELECT x FROM b",
     "SELECT x FROM (SELECT x, ROW_NUMBER() OVER (PARTITION BY x) FROM a "
     "INTERSECT SELECT x, ROW_NUMBER() OVER (PARTITION BY x) FROM b)"},
    {"intersect binds tighter", "SELECT g FROM a UNION SELECT g FROM b INTERSECT SELECT g FROM a WHERE x > 1",
     "SELECT g FROM a UNION SELECT * FROM (SELECT g FROM b INTERSECT SELECT g FROM a WHERE x > 1)"},
    {"compound order/limit/offset", "SELECT id, x FROM a UNION ALL SELECT id, x FROM b ORDER BY 1, 2 LIMIT 5 OFFSET 2",
     NULL},
    /* WITH and FROM subqueries */
    {"with", "WITH big AS (SELECT id, g, x FROM a WHERE x > 1) SELECT g, COUNT(*) AS n FROM big GROUP BY g", NULL},
    {"with twice", "WITH t AS (SELECT id, g FROM a WHERE x IS NOT NULL) "
                   "SELECT t1.id, t2.id AS id2 FROM t t1 JOIN t t2 ON t1.g = t2.g", NULL},
    {"with columns", "WITH t (k, v) AS (SELECT g, SUM(x) FROM a GROUP BY g) SELECT k, v FROM t WHERE v > 2", NULL},
    {"from subquery", "SELECT s.g, s.n FROM (SELECT g, COUNT(*) AS n FROM a GROUP BY g) AS s WHERE s.n > 1", NULL},
    {"subquery join", "SELECT s.id, b.id AS bid FROM (SELECT id, g FROM a WHERE x < 4) s JOIN b ON s.g = b.g", NULL},
    /* joins */
    {"right join", "SELECT a.id, b.id AS bid FROM a RIGHT JOIN b ON a.g = b.g AND a.x < b.x", NULL},
    {"full join", "SELECT a.id, b.id AS bid FROM a FULL JOIN b ON a.g = b.g", NULL},
    {"full join residual", "SELECT a.id, b.id AS bid FROM a FULL JOIN b ON a.x = b.x AND a.y > b.y", NULL},
    {"cross join", "SELECT a.id, b.id AS bid FROM a CROSS JOIN b WHERE a.x > b.x", NULL},
    {"comma join", "SELECT a.id, b.id AS bid FROM a, b WHERE a.g = b.g AND a.x = b.x", NULL},
    /* (SQLite's * keeps table order; PostgreSQL's puts the USING columns first) */
    {"using", "SELECT * FROM (SELECT id, g, x FROM a) p JOIN (SELECT id AS bid, g, y FROM b) q USING (g)",
     "SELECT g, id, x, bid, y FROM (SELECT id, g, x FROM a) p JOIN (SELECT id AS bid, g, y FROM b) q USING (g)"},
    {"left using", "SELECT * FROM (SELECT id, g, x FROM a) p LEFT JOIN (SELECT id AS bid, g, y FROM b) q USING (g)",
     "SELECT g, id, x, bid, y FROM (SELECT id, g, x FROM a) p LEFT JOIN (SELECT id AS bid, g, y FROM b) q USING (g)"},
    {"full using", "SELECT g, x, y FROM (SELECT g, x FROM a) p FULL JOIN (SELECT g, y FROM b) q USING (g)", NULL},
    {"natural", "SELECT * FROM (SELECT id, g FROM a) p NATURAL JOIN (SELECT g, x FROM b) q",
     "SELECT g, id, x FROM (SELECT id, g FROM a) p NATURAL JOIN (SELECT g, x FROM b) q"},
    {"chained using", "SELECT * FROM (SELECT id, g FROM a) p JOIN (SELECT g, x FROM b) q USING (g) "
                      "JOIN (SELECT g, y FROM a) r USING (g)",
     "SELECT g, id, x, y FROM (SELECT id, g FROM a) p JOIN (SELECT g, x FROM b) q USING (g) "
     "JOIN (SELECT g, y FROM a) r USING (g)"},
    {"right using", "SELECT * FROM (SELECT id, g FROM a) p RIGHT JOIN (SELECT g, x FROM b) q USING (g)",
     "SELECT q.g, id, x FROM (SELECT id, g FROM a) p RIGHT JOIN (SELECT g, x FROM b) q USING (g)"},
    /* subqueries */
    {"in", "SELECT id FROM a WHERE x IN (SELECT x FROM b)", NULL},
    {"not in", "SELECT id FROM a WHERE x NOT IN (SELECT x FROM b WHERE g = 'p')", NULL},
    {"not (in)", "SELECT id, g FROM a WHERE NOT (g IN (SELECT g FROM b WHERE x > 2))", NULL},
    {"in correlated", "SELECT id FROM a WHERE x IN (SELECT b.x FROM b WHERE b.g = a.g)", NULL},
    {"not in correlated", "SELECT id FROM a WHERE x NOT IN (SELECT b.x FROM b WHERE b.g = a.g)", NULL},
    {"in expression", "SELECT id FROM a WHERE x + 1 IN (SELECT x * 2 FROM b WHERE y > 0)", NULL},
    {"in grouped subquery", "SELECT id, g FROM a WHERE g IN (SELECT g FROM b GROUP BY g HAVING COUNT(*) > 1)", NULL},
    {"exists", "SELECT id FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.g = a.g AND b.x > a.x)", NULL},
    {"not exists", "SELECT id, g FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.g = a.g)", NULL},
    {"exists uncorrelated", "SELECT id FROM a WHERE EXISTS (SELECT 1 FROM b WHERE x > 3)", NULL},
    {"exists residual only", "SELECT id FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.y < a.y)", NULL},
    {"in under or", "SELECT id FROM a WHERE x > 3 OR g IN (SELECT g FROM b WHERE x < 2)", NULL},
    {"not in under or", "SELECT id FROM a WHERE y < 0 OR x NOT IN (SELECT x FROM b)", NULL},
    {"exists under not/or", "SELECT id FROM a WHERE NOT (EXISTS (SELECT 1 FROM b WHERE b.x = a.x) OR x = 1)", NULL},
    {"in as a value", "SELECT id, x IN (SELECT x FROM b) AS hit, EXISTS (SELECT 1 FROM b WHERE b.g = a.g) AS e FROM a",
     NULL},
    {"scalar", "SELECT id, x - (SELECT MAX(x) FROM b) AS d FROM a", NULL},
    {"scalar in where", "SELECT id FROM a WHERE x >= (SELECT AVG(x) FROM b)", NULL},
    {"scalar count correlated", "SELECT id, (SELECT COUNT(*) FROM b WHERE b.g = a.g) AS n FROM a", NULL},
    {"scalar avg correlated", "SELECT id FROM a WHERE x > (SELECT AVG(x) FROM b WHERE b.g = a.g)", NULL},
    {"scalar lookup", "SELECT id, (SELECT g FROM b WHERE b.id = a.x) AS bg FROM a", NULL},
    {"scalar pinned", "SELECT id, (SELECT x FROM b WHERE id = 3) AS b3 FROM a", NULL},
    {"scalar limit 1", "SELECT id, (SELECT x FROM b ORDER BY x DESC, id LIMIT 1) AS top FROM a", NULL},
    {"nested", "SELECT id FROM a WHERE g IN (SELECT g FROM b WHERE x IN (SELECT x FROM a WHERE y > 0))", NULL},
    {"subquery in from with in", "SELECT s.id FROM (SELECT id, g FROM a WHERE x IN (SELECT x FROM b)) s", NULL},
    /* window functions */
    {"row_number top-n", "SELECT id, g, x FROM (SELECT id, g, x, ROW_NUMBER() OVER (PARTITION BY g ORDER BY x DESC, id) "
                         "AS rn FROM a) t WHERE rn <= 2", NULL},
    {"rank top-n", "SELECT * FROM (SELECT id, g, RANK() OVER (PARTITION BY g ORDER BY x) AS r FROM a) t WHERE r <= 2",
     NULL},
    {"dense_rank top-n", "SELECT * FROM (SELECT id, DENSE_RANK() OVER (ORDER BY y DESC) AS r FROM a) t WHERE r < 3",
     NULL},
    {"first per group", "SELECT id, g FROM (SELECT id, g, ROW_NUMBER() OVER (PARTITION BY g ORDER BY id DESC) AS rn "
                        "FROM b) t WHERE rn = 1", NULL},
    {"dense_rank", "SELECT id, DENSE_RANK() OVER (ORDER BY x) AS dr FROM a", NULL},
    {"row_number", "SELECT id, ROW_NUMBER() OVER (PARTITION BY g ORDER BY x, id) AS rn FROM a", NULL},
    {"window aggregates", "SELECT id, SUM(x) OVER (PARTITION BY g) AS s, COUNT(*) OVER (PARTITION BY g ORDER BY id) AS c, "
                          "AVG(y) OVER (PARTITION BY g ORDER BY x) AS av, MIN(x) OVER () AS mn, "
                          "MAX(g) OVER (ORDER BY id) AS mx FROM a", NULL},
    {"window expression partition", "SELECT id, RANK() OVER (PARTITION BY x % 2 ORDER BY y) AS r, "
                                    "COUNT(y) OVER (PARTITION BY x % 2) AS n FROM a", NULL},
    {"window order by limit", "SELECT id, ROW_NUMBER() OVER (ORDER BY x DESC, id) AS rn FROM a ORDER BY rn LIMIT 3",
     NULL},
    {"window over join", "SELECT a.id, b.id AS bid, RANK() OVER (PARTITION BY a.id ORDER BY b.x) AS r "
                         "FROM a JOIN b ON a.g = b.g", NULL},
    /* aggregates */
    {"bool_and/bool_or", "SELECT g, BOOL_AND(x > 2) AS a, BOOL_OR(y < 0) AS o, EVERY(x IS NOT NULL) AS e FROM a GROUP BY g",
     "SELECT g, MIN(x > 2), MAX(y < 0), MIN(x IS NOT NULL) FROM a GROUP BY g"},
    {"variance", "SELECT g, VAR_SAMP(x) AS vs, VAR_POP(x) AS vp, STDDEV(y) AS sd, STDDEV_POP(y) AS sp, VARIANCE(x + y) AS v2 "
                 "FROM a GROUP BY g",
     "SELECT g, CASE WHEN COUNT(x) > 1 THEN (SUM(x * x) - SUM(x) * SUM(x) * 1.0 / COUNT(x)) / (COUNT(x) - 1) END, "
     "CASE WHEN COUNT(x) > 0 THEN (SUM(x * x) - SUM(x) * SUM(x) * 1.0 / COUNT(x)) / COUNT(x) END, "
     "CASE WHEN COUNT(y) > 1 THEN sqrt(MAX(0, (SUM(y * y) - SUM(y) * SUM(y) / COUNT(y)) / (COUNT(y) - 1))) END, "
     "CASE WHEN COUNT(y) > 0 THEN sqrt(MAX(0, (SUM(y * y) - SUM(y) * SUM(y) / COUNT(y)) / COUNT(y))) END, "
     "CASE WHEN COUNT(x + y) > 1 THEN (SUM((x + y) * (x + y)) - SUM(x + y) * SUM(x + y) / COUNT(x + y)) / "
     "(COUNT(x + y) - 1) END FROM a GROUP BY g"},
    {"global variance", "SELECT STDDEV_SAMP(x) AS s, COUNT(*) AS n FROM a",
     "SELECT CASE WHEN COUNT(x) > 1 THEN sqrt((SUM(x * x) - SUM(x) * SUM(x) * 1.0 / COUNT(x)) / (COUNT(x) - 1)) END, "
     "COUNT(*) FROM a"},
    {"filter", "SELECT g, COUNT(*) FILTER (WHERE x > 2) AS n, SUM(y) FILTER (WHERE x IS NOT NULL) AS s, "
               "COUNT(DISTINCT x) FILTER (WHERE y > 0) AS d, MAX(x) FILTER (WHERE y < 1) AS m FROM a GROUP BY g", NULL},
    {"string_agg", "SELECT STRING_AGG(g, ',' ORDER BY g DESC) AS s FROM a",
     "SELECT (SELECT group_concat(g, ',') FROM (SELECT g FROM a WHERE g IS NOT NULL ORDER BY g DESC))"},
    {"string_agg grouped", "SELECT x, STRING_AGG(g, ' ' ORDER BY id) AS s FROM a GROUP BY x",
     "SELECT o.x, (SELECT group_concat(g, ' ') FROM (SELECT g FROM a i WHERE i.x IS o.x AND g IS NOT NULL "
     "ORDER BY id)) FROM (SELECT DISTINCT x FROM a) o"},
    {"string_agg distinct", "SELECT STRING_AGG(DISTINCT g, ',') AS s FROM b",
     "SELECT (SELECT group_concat(g, ',') FROM (SELECT DISTINCT g FROM b WHERE g IS NOT NULL ORDER BY g))"},
    {"array_agg", "SELECT g, ARRAY_AGG(x) AS xs FROM a GROUP BY g",
     "SELECT o.g, (SELECT '{' || group_concat(coalesce(x, 'NULL'), ',') || '}' FROM (SELECT x FROM a i "
     "WHERE i.g IS o.g ORDER BY x)) FROM (SELECT DISTINCT g FROM a) o"},
    {"json_agg", "SELECT JSON_AGG(g ORDER BY id DESC) FILTER (WHERE x < 4) AS j FROM a",
     "SELECT (SELECT '[' || group_concat(json_quote(g), ',') || ']' FROM (SELECT g FROM a WHERE x < 4 "
     "ORDER BY id DESC))"},
    /* ORDER BY ... LIMIT ... OFFSET */
    {"offset", "SELECT id, x FROM a ORDER BY x DESC, id LIMIT 3 OFFSET 2", NULL},
    {"offset only", "SELECT id FROM a ORDER BY id OFFSET 4", "SELECT id FROM a ORDER BY id LIMIT -1 OFFSET 4"},
};

START_TEST(test_cases)
{
    int i = _i;
    run_case(&CASES[i], (uint64_t)i + 1, 3, 20);
}
END_TEST

Suite *check_queryops_suite(void)
{
    Suite *s = suite_create("queryops");
    TCase *tc = tcase_create("views");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_cases, 0, (int)SS_ARRAY_LEN(CASES));
    suite_add_tcase(s, tc);
    return s;
}
