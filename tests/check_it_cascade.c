/*
 * check_it_cascade.c — SEM_FILTER cascades end to end through the engine (SQL, planner,
 * pipelines, dispatcher, the wink embedder, the words classifier and stories260K itself as
 * proxies, stories260K as the oracle: real,
 * deterministic, meaningless answers, which is all these invariants need):
 *   - under inserts, updates and deletes the view holds exactly the rows whose unit the
 *     cascade's rule accepts (its label if the oracle gave one, else score >= hi), checked
 *     against the operator's state after every change;
 *   - a cascade that must be exact (recall = precision = 1) equals the plain SEM_FILTER, both
 *     maintained and built from scratch at the end;
 *   - the plan (thresholds, samples, counters) is durable: after a restart EXPLAIN shows the
 *     same cascade and the same rows, nothing is asked again, and a row whose projection is
 *     live comes and goes without a call;
 *   - a bad cascade option is refused at its line:col.
 */
#include "ss_engine.h"
#include "engine_fixture.h"

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The SEM_FILTER node of a view. */
static int filter_node(sqlite3 *db, const char *view)
{
    char q[256];
    snprintf(q, sizeof q, "SELECT id FROM ss_nodes WHERE view = '%s' AND kind = 'sem_filter'", view);
    return (int)q_int(db, q);
}

/* The view's rows are those of the units the rule accepts, and each unit's emitted decision is
 * the rule's: label if any, else s >= hi. */
static void check_rule(ss_engine_t *e, const char *dbpath, const char *view)
{
    char sync[128];
    snprintf(sync, sizeof sync, "SELECT count(*) FROM %s", view); /* catch_up: the views are current */
    exec(e, sync);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    int id = filter_node(db, view);
    char q[1024];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM st_%d_cu, st_%d_cplan p WHERE w > 0 AND d <> "
             "(CASE WHEN y IS NOT NULL THEN y <> 0 WHEN s IS NULL THEN 0 ELSE s >= p.hi END)",
             id, id);
    ck_assert_int_eq(q_int(db, q), 0);
    snprintf(q, sizeof q, "SELECT coalesce(sum(r.w), 0) FROM st_%d_crow r JOIN st_%d_cu u ON u.k = r.k WHERE u.d = 1",
             id, id);
    int64_t want = q_int(db, q);
    snprintf(q, sizeof q, "SELECT count(*) FROM view_%s", view);
    ck_assert_int_eq(q_int(db, q), want);
    snprintf(q, sizeof q, "SELECT count(*) FROM st_%d_cu WHERE w <= 0", id); /* units leave with their rows */
    ck_assert_int_eq(q_int(db, q), 0);
    sqlite3_close(db);
}

static int64_t oracle_asked(const char *dbpath, const char *view)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char q[256];
    snprintf(q, sizeof q, "SELECT oracle FROM st_%d_cplan", filter_node(db, view));
    int64_t v = q_int(db, q);
    sqlite3_close(db);
    return v;
}

static char *cascade_lines(ss_engine_t *e, const char *view)
{
    char q[128];
    snprintf(q, sizeof q, "EXPLAIN VIEW %s", view);
    char *t = run(e, q), *a = strstr(t, "cascade of #");
    ck_assert_msg(a != NULL, "EXPLAIN shows no cascade:\n%s", t);
    char *b = strstr(a, " node |");
    char *r = strndup(a, b ? (size_t)(b - a) : strlen(a));
    free(t);
    return r;
}

static const char *WORDS[] = {"cat", "dog", "fish", "horse", "tree", "car", "house", "moon", "sun", "bird",
                              "girl", "boy", "cake", "ball", "river", "flower", "king", "ship", "rain", "bear"};

static void insert_rows(ss_engine_t *e, int from, int to, int variant)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_puts(&b, "INSERT INTO papers VALUES ");
    for (int i = from; i < to; i++)
        ss_buf_printf(&b, "%s(%d, 'the %s and the %s %d')", i > from ? ", " : "", i, WORDS[(i * 7 + variant) % 20],
                      WORDS[(i * 3 + 1) % 20], (i + variant) % 5);
    exec(e, ss_buf_cstr(&b));
    ss_buf_free(&b);
}

static void delete_rows(ss_engine_t *e, int from, int to)
{
    ss_buf_t b = SS_BUF_INIT;
    for (int i = from; i < to; i++)
        ss_buf_printf(&b, "DELETE FROM papers WHERE id = %d;", i);
    exec(e, ss_buf_cstr(&b));
    ss_buf_free(&b);
}

#define CASCADE "cascade = 'proxy=embed, sample=12, train=12'"
#define EXACT "cascade = 'proxy=embed, recall=1, precision=1, sample=12, train=12'"
/* stories260K's P(yes) for these prompts lies around 0.2: this threshold splits them about evenly */
#define ASK "'Is {abstract} about animals?', yes_prob = 0.22"

START_TEST(test_cascade_rule_exact_and_durable)
{
    char *dir = tu_tmpdir(), db[1024];
    snprintf(db, sizeof db, "%s/state.db", dir);
    ss_engine_t *e = open_engine(dir);
    exec(e, "CREATE STREAM papers (id INT KEY, abstract TEXT) WITH (topic = 'papers', format = 'json')");
    exec(e, "CREATE CONTINUOUS VIEW c1 AS SELECT id, abstract FROM papers WHERE SEM_FILTER(" ASK ", " CASCADE ")");
    exec(e, "CREATE CONTINUOUS VIEW cx AS SELECT id, abstract FROM papers WHERE SEM_FILTER(" ASK ", " EXACT ")");
    char mp[1024], sql[1400];
    snprintf(sql, sizeof sql, "CREATE MODEL small WITH (backend = 'local', path = '%s')",
             tu_model_path("stories260K.gguf", mp, sizeof mp));
    exec(e, sql);
    exec(e, "CREATE CONTINUOUS VIEW c3 AS SELECT id, abstract FROM papers WHERE SEM_FILTER(" ASK
            ", cascade = 'proxy=model:small, sample=12')");
    exec(e, "CREATE CONTINUOUS VIEW c4 AS SELECT id, abstract FROM papers WHERE SEM_FILTER(" ASK
            ", cascade = 'proxy=words, sample=12, train=12')");
    exec(e, "CREATE CONTINUOUS VIEW p1 AS SELECT id, abstract FROM papers WHERE SEM_FILTER(" ASK ")");
    insert_rows(e, 0, 60, 0);
    check_rule(e, db, "c1");
    check_rule(e, db, "cx");
    same(e, "SELECT * FROM cx ORDER BY id", "SELECT * FROM p1 ORDER BY id");
    insert_rows(e, 60, 90, 0);                /* the population grows by half */
    insert_rows(e, 10, 25, 3);                /* updates: new abstracts */
    delete_rows(e, 0, 8);                     /* deletes */
    insert_rows(e, 90, 200, 1);               /* more than doubles: the proxy is refitted */
    delete_rows(e, 150, 170);
    check_rule(e, db, "c1");
    check_rule(e, db, "cx");
    check_rule(e, db, "c3");
    check_rule(e, db, "c4");
    char *l3 = cascade_lines(e, "c3"); /* the proxy model scored every unit */
    ck_assert_msg(strstr(l3, "proxy requests ") && !strstr(l3, "proxy requests 0;"), "%s", l3);
    free(l3);
    same(e, "SELECT * FROM cx ORDER BY id", "SELECT * FROM p1 ORDER BY id");
    char *ex = run(e, "EXPLAIN VIEW c1");
    ck_assert_msg(strstr(ex, "cascade: a cheap proxy scores") && strstr(ex, "estimated recall") &&
                      strstr(ex, "oracle labels held") && strstr(ex, "embedder: wink"),
                  "%s", ex);
    free(ex);
    /* from scratch: the exact cascade built over the topic's history equals the plain filter */
    exec(e, "CREATE CONTINUOUS VIEW cx2 AS SELECT id, abstract FROM papers WHERE SEM_FILTER(" ASK ", " EXACT ")");
    same(e, "SELECT * FROM cx2 ORDER BY id", "SELECT * FROM p1 ORDER BY id");
    check_rule(e, db, "cx2");
    /* restart: the same plan, no question asked again, deletes free */
    char *before = cascade_lines(e, "c1");
    int64_t asked = oracle_asked(db, "c1");
    fprintf(stderr, "%s", before); /* the plan the restart must keep */
    char *rows = run(e, "SELECT * FROM c1 ORDER BY id");
    ss_engine_close(e);
    e = open_engine(dir);
    char *after = cascade_lines(e, "c1"), *rows2 = run(e, "SELECT * FROM c1 ORDER BY id");
    ck_assert_str_eq(before, after);
    ck_assert_str_eq(rows, rows2);
    exec(e, "SELECT count(*) FROM c1"); /* caught up: the restart asked nothing again */
    ck_assert_int_eq(oracle_asked(db, "c1"), asked);
    /* a row whose projection is live (row 30's abstract) joins its unit's decision, and leaves
     * again, without a call */
    exec(e, "INSERT INTO papers VALUES (1000, 'the girl and the boy 0')");
    check_rule(e, db, "c1");
    ck_assert_int_eq(oracle_asked(db, "c1"), asked);
    delete_rows(e, 1000, 1001);
    check_rule(e, db, "c1");
    ck_assert_int_eq(oracle_asked(db, "c1"), asked);
    /* deletes that halve the population: the proxy is refitted, the rule still holds */
    delete_rows(e, 100, 140);
    delete_rows(e, 40, 100);
    check_rule(e, db, "c1");
    same(e, "SELECT * FROM cx ORDER BY id", "SELECT * FROM p1 ORDER BY id");
    free(before);
    free(after);
    free(rows);
    free(rows2);
    ss_engine_close(e);
    free(dir);
}
END_TEST

START_TEST(test_cascade_option_errors)
{
    char *dir = tu_tmpdir();
    ss_engine_t *e = open_engine(dir);
    exec(e, "CREATE STREAM papers (id INT KEY, abstract TEXT) WITH (topic = 'papers', format = 'json')");
    static const struct {
        const char *opt, *msg;
    } cases[] = {
        {"cascade = 'proxy=embed, recal=0.9'", "cascade: unknown setting 'recal' (did you mean recall?)"},
        {"cascade = 'recall=0.9'", "cascade: the setting proxy is required"},
        {"cascade = 'proxy=model:nosuch'", "cascade: unknown proxy model \"nosuch\""},
        {"cascade = 'proxy=embed, delta=0'", "cascade: delta (the failure probability) must be"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char sql[512], err[SS_ERRSZ] = "";
        snprintf(sql, sizeof sql, "CREATE CONTINUOUS VIEW v AS SELECT id FROM papers WHERE SEM_FILTER(" ASK ", %s)",
                 cases[i].opt);
        ss_buf_t out = SS_BUF_INIT;
        ck_assert_int_ne(ss_engine_exec(e, sql, strlen(sql), NULL, &out, err, sizeof err), SS_OK);
        char want[256]; /* at the option's line:col */
        snprintf(want, sizeof want, "1:%d: %s", (int)(strstr(sql, "cascade =") - sql) + 1, cases[i].msg);
        ck_assert_msg(strstr(err, want) != NULL, "%s: got \"%s\", want \"%s\"", cases[i].opt, err, want);
        ss_buf_free(&out);
    }
    ss_engine_close(e);
    free(dir);
}
END_TEST

Suite *check_it_cascade_suite(void)
{
    Suite *s = suite_create("it_cascade");
    TCase *tc = tcase_create("it_cascade");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_cascade_rule_exact_and_durable);
    tcase_add_test(tc, test_cascade_option_errors);
    suite_add_tcase(s, tc);
    return s;
}
