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
 *   - a bad cascade option is refused at its line:col;
 *   - SEM_JOIN cascades (units are pairs of projections): the same rule and the same exactness
 *     under inserts, updates and deletes on both sides, durable across a restart.
 */
#include "ss_engine.h"
#include "testutil.h"

#include <check.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ss_engine_t *open_engine(const char *dir)
{
    char db[1024], mp[1024];
    snprintf(db, sizeof db, "%s/state.db", dir);
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.model_path = tu_model_path("stories260K.gguf", mp, sizeof mp);
    o.max_latency_ms = 20;
    o.catch_up = 1;
    o.threads = 1;
    ss_engine_t *e = NULL;
    char err[SS_ERRSZ] = "";
    int rc = ss_engine_open(&o, &e, err, sizeof err);
    ck_assert_msg(rc == SS_OK, "engine open: %s", err);
    return e;
}

static char *run(ss_engine_t *e, const char *sql)
{
    ss_buf_t out = SS_BUF_INIT;
    char err[SS_ERRSZ] = "";
    int rc = ss_engine_exec(e, sql, strlen(sql), "test", &out, err, sizeof err);
    ck_assert_msg(rc == SS_OK, "%s: %s", sql, err);
    return ss_buf_take(&out);
}

static void exec(ss_engine_t *e, const char *sql) { free(run(e, sql)); }

static void same(ss_engine_t *e, const char *a, const char *b)
{
    char *x = run(e, a), *y = run(e, b);
    if (strcmp(x, y))
        fprintf(stderr, "%s\n%s\n%s\n%s\n", a, x, b, y);
    ck_assert_str_eq(x, y);
    free(x);
    free(y);
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The SEM_FILTER (or SEM_JOIN) node of a view. */
static int filter_node(sqlite3 *db, const char *view)
{
    char q[256];
    snprintf(q, sizeof q, "SELECT id FROM ss_nodes WHERE view = '%s' AND kind IN ('sem_filter', 'sem_join')", view);
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
/* stories260K's P(yes) for these prompts lies around 0.2: this threshold splits them about evenly
 * (JASK's 0.27 splits the join's pairs about 1:3) */
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

/* ------------------------------------------------------------------ SEM_JOIN cascades */

/* lkey(k) / rkey(k): the left and right projections of a pair unit's key (u32 length, left, right). */
static void pair_part(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const unsigned char *k = sqlite3_value_blob(argv[0]);
    int n = sqlite3_value_bytes(argv[0]);
    uint32_t ln;
    if (n < 4) {
        sqlite3_result_null(cx);
        return;
    }
    memcpy(&ln, k, 4);
    if (sqlite3_user_data(cx))
        sqlite3_result_blob(cx, k + 4 + ln, n - 4 - (int)ln, SQLITE_TRANSIENT);
    else
        sqlite3_result_blob(cx, k + 4, (int)ln, SQLITE_TRANSIENT);
}

/* The join view's rows are the live row pairs of the units the rule accepts. */
static void check_join_rule(ss_engine_t *e, const char *dbpath, const char *view)
{
    char q[1024];
    snprintf(q, sizeof q, "SELECT count(*) FROM %s", view);
    exec(e, q);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    sqlite3_create_function(db, "lkey", 1, SQLITE_UTF8, NULL, pair_part, NULL, NULL);
    sqlite3_create_function(db, "rkey", 1, SQLITE_UTF8, (void *)1, pair_part, NULL, NULL);
    int id = filter_node(db, view);
    snprintf(q, sizeof q,
             "SELECT count(*) FROM st_%d_cu, st_%d_cplan p WHERE w > 0 AND d <> "
             "(CASE WHEN y IS NOT NULL THEN y <> 0 WHEN s IS NULL THEN 0 ELSE s >= p.hi END)",
             id, id);
    ck_assert_int_eq(q_int(db, q), 0);
    snprintf(q, sizeof q,
             "SELECT coalesce(sum(l.w * r.w), 0) FROM st_%d_cu u JOIN st_%d_s0 l ON l.k = lkey(u.k) "
             "JOIN st_%d_s1 r ON r.k = rkey(u.k) WHERE u.d = 1 AND l.w > 0 AND r.w > 0",
             id, id, id);
    int64_t want = q_int(db, q);
    snprintf(q, sizeof q, "SELECT count(*) FROM view_%s", view);
    ck_assert_int_eq(q_int(db, q), want);
    snprintf(q, sizeof q, /* every unit is a pair of live projections, with their weight */
             "SELECT count(*) FROM st_%d_cu u WHERE w <> (SELECT coalesce(sum(w), 0) FROM st_%d_s0 WHERE k = lkey(u.k)) * "
             "(SELECT coalesce(sum(w), 0) FROM st_%d_s1 WHERE k = rkey(u.k)) OR w <= 0",
             id, id, id);
    ck_assert_int_eq(q_int(db, q), 0);
    sqlite3_close(db);
}

static void join_rows(ss_engine_t *e, const char *stream, int from, int to, int variant)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_printf(&b, "INSERT INTO %s VALUES ", stream);
    for (int i = from; i < to; i++) /* few distinct words: many rows share a projection */
        ss_buf_printf(&b, "%s(%d, '%s')", i > from ? ", " : "", i, WORDS[(i * 7 + variant) % 12]);
    exec(e, ss_buf_cstr(&b));
    ss_buf_free(&b);
}

#define JASK "ON 'Is {a.word} a kind of {b.word}?' WITH (yes_prob = 0.27"

START_TEST(test_join_cascade_rule_exact_and_durable)
{
    char *dir = tu_tmpdir(), db[1024];
    snprintf(db, sizeof db, "%s/state.db", dir);
    ss_engine_t *e = open_engine(dir);
    exec(e, "CREATE STREAM wa (id INT KEY, word TEXT) WITH (topic = 'wa', format = 'json')");
    exec(e, "CREATE STREAM wb (id INT KEY, word TEXT) WITH (topic = 'wb', format = 'json')");
    exec(e, "CREATE CONTINUOUS VIEW jc AS SELECT a.id AS aid, b.id AS bid FROM wa a SEM_JOIN wb b " JASK
            ", cascade = 'proxy=embed, sample=10, train=10')");
    exec(e, "CREATE CONTINUOUS VIEW jw AS SELECT a.id AS aid, b.id AS bid FROM wa a SEM_JOIN wb b " JASK
            ", cascade = 'proxy=words, sample=10, train=10')");
    exec(e, "CREATE CONTINUOUS VIEW jx AS SELECT a.id AS aid, b.id AS bid FROM wa a SEM_JOIN wb b " JASK
            ", cascade = 'proxy=embed, recall=1, precision=1, sample=10, train=10')");
    exec(e, "CREATE CONTINUOUS VIEW jp AS SELECT a.id AS aid, b.id AS bid FROM wa a SEM_JOIN wb b " JASK ")");
    join_rows(e, "wa", 0, 10, 0);
    join_rows(e, "wb", 0, 6, 1);
    check_join_rule(e, db, "jc");
    check_join_rule(e, db, "jx");
    same(e, "SELECT * FROM jx ORDER BY aid, bid", "SELECT * FROM jp ORDER BY aid, bid");
    join_rows(e, "wb", 6, 14, 2);   /* the right side grows */
    join_rows(e, "wa", 3, 7, 5);    /* updates on the left */
    exec(e, "DELETE FROM wa WHERE id = 1; DELETE FROM wb WHERE id = 2; DELETE FROM wb WHERE id = 9");
    join_rows(e, "wa", 10, 24, 3);  /* more than doubles the units: refit */
    check_join_rule(e, db, "jc");
    check_join_rule(e, db, "jw");
    check_join_rule(e, db, "jx");
    same(e, "SELECT * FROM jx ORDER BY aid, bid", "SELECT * FROM jp ORDER BY aid, bid");
    ss_engine_close(e); /* the join decides some pairs each way (yes_prob splits stories260K's answers) */
    {
        sqlite3 *rd = NULL;
        ck_assert_int_eq(sqlite3_open_v2(db, &rd, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        int64_t n = q_int(rd, "SELECT count(*) FROM view_jp");
        ck_assert_msg(n > 0 && n < 23 * 12, "plain join: %lld of %d pairs", (long long)n, 23 * 12);
        sqlite3_close(rd);
    }
    e = open_engine(dir);
    char *ex = run(e, "EXPLAIN VIEW jc");
    ck_assert_msg(strstr(ex, "bilinear cascade") && strstr(ex, "cascade of #") && strstr(ex, "oracle labels held"),
                  "%s", ex);
    free(ex);
    /* from scratch: the exact cascade over the topics' history equals the plain join */
    exec(e, "CREATE CONTINUOUS VIEW jx2 AS SELECT a.id AS aid, b.id AS bid FROM wa a SEM_JOIN wb b " JASK
            ", cascade = 'proxy=embed, recall=1, precision=1, sample=10, train=10')");
    same(e, "SELECT * FROM jx2 ORDER BY aid, bid", "SELECT * FROM jp ORDER BY aid, bid");
    /* restart: the same rows, nothing asked again; a delete and a row with a live projection are free */
    char *before = cascade_lines(e, "jc"), *rows = run(e, "SELECT * FROM jc ORDER BY aid, bid");
    int64_t asked = oracle_asked(db, "jc");
    ss_engine_close(e);
    e = open_engine(dir);
    char *after = cascade_lines(e, "jc"), *rows2 = run(e, "SELECT * FROM jc ORDER BY aid, bid");
    ck_assert_str_eq(before, after);
    ck_assert_str_eq(rows, rows2);
    exec(e, "DELETE FROM wb WHERE id = 3");
    join_rows(e, "wa", 100, 101, 0); /* row 100's word is a live projection: its units exist */
    check_join_rule(e, db, "jc");
    ck_assert_int_eq(oracle_asked(db, "jc"), asked);
    same(e, "SELECT * FROM jx ORDER BY aid, bid", "SELECT * FROM jp ORDER BY aid, bid");
    /* cascade and candidate pruning do not combine: refused at the pruning option */
    const char *bad = "CREATE CONTINUOUS VIEW jbad AS SELECT a.id FROM wa a SEM_JOIN wb b ON '{a.word} {b.word}' "
                      "WITH (cascade = 'proxy=embed', join_candidates = 3)";
    char err[SS_ERRSZ] = "", want[128];
    ss_buf_t out = SS_BUF_INIT;
    ck_assert_int_ne(ss_engine_exec(e, bad, strlen(bad), NULL, &out, err, sizeof err), SS_OK);
    snprintf(want, sizeof want, "1:%d: SEM_JOIN: cascade cannot be combined with join_candidates",
             (int)(strstr(bad, "join_candidates") - bad) + 1);
    ck_assert_msg(strstr(err, want) != NULL, "got \"%s\", want \"%s\"", err, want);
    ss_buf_free(&out);
    free(before);
    free(after);
    free(rows);
    free(rows2);
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
    tcase_add_test(tc, test_join_cascade_rule_exact_and_durable);
    suite_add_tcase(s, tc);
    return s;
}
