/*
 * check_planner.c — tests of the planner and EXPLAIN: every example script (examples/<name>.sql) is
 * parsed, loaded into a catalog on an in-memory SQLite database, planned as one
 * DAG and its EXPLAIN compared with tests/expected/<example>.explain (run with
 * SS_UPDATE_GOLDEN=1 to rewrite the golden files); plan structure checks
 * (operator order, keys, templates, ids); and semantic errors with exact
 * line:column positions.
 */
#include "ss_catalog.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs every statement of sql against the catalog; returns the first error code (err filled). */
static int run_sql(ss_catalog_t *c, const char *sql, char *err, size_t errsz)
{
    ss_ast_script_t *s = NULL;
    int rc = ss_parse(sql, strlen(sql), NULL, &s, err, errsz);
    for (int i = 0; !rc && i < s->n; i++) {
        const ss_ast_stmt_t *st = s->stmts[i];
        switch (st->kind) {
        case SS_STMT_CREATE_STREAM: rc = ss_catalog_add_stream(c, st, err, errsz); break;
        case SS_STMT_CREATE_VIEW: rc = ss_catalog_add_view(c, st, err, errsz); break;
        case SS_STMT_CREATE_MODEL: rc = ss_catalog_add_model(c, st, err, errsz); break;
        case SS_STMT_DROP: rc = ss_catalog_drop(c, st->object, st->name, st->if_exists, err, errsz); break;
        case SS_STMT_SET: {
            ss_buf_t b = SS_BUF_INIT;
            ss_val_to_text(&st->set_value, &b);
            rc = ss_catalog_set(c, st->name, ss_buf_cstr(&b), err, errsz);
            ss_buf_free(&b);
            break;
        }
        default: rc = ss_seterr(err, errsz, SS_ERR_INVALID, "unexpected statement"); break;
        }
    }
    ss_ast_script_free(s);
    return rc;
}

static ss_catalog_t *mem_catalog(sqlite3 **db)
{
    ck_assert_int_eq(sqlite3_open(":memory:", db), SQLITE_OK);
    ss_catalog_t *c = NULL;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_catalog_open(*db, &c, err, sizeof err) == SS_OK, "%s", err);
    return c;
}

static char *explain_all(ss_catalog_t *c)
{
    ss_plan_t *p = NULL;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_plan_build(c, &p, err, sizeof err) == SS_OK, "%s", err);
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_explain(p, NULL, &b), SS_OK);
    ss_plan_free(p);
    return ss_buf_take(&b);
}

static void golden(const char *example)
{
    char path[1024], gpath[1024], err[SS_ERRSZ] = "";
    snprintf(path, sizeof path, "%s/examples/%s.sql", tu_source_dir(), example);
    snprintf(gpath, sizeof gpath, "%s/tests/expected/%s.explain", tu_source_dir(), example);
    char *sql = tu_read_file(path, NULL);
    ck_assert_msg(sql != NULL, "cannot read %s", path);
    sqlite3 *db;
    ss_catalog_t *c = mem_catalog(&db);
    ck_assert_msg(run_sql(c, sql, err, sizeof err) == SS_OK, "%s: %s", example, err);
    char *got = explain_all(c);
    const char *upd = getenv("SS_UPDATE_GOLDEN");
    if (upd && *upd == '1') {
        FILE *f = fopen(gpath, "w");
        ck_assert_ptr_nonnull(f);
        fputs(got, f);
        fclose(f);
    }
    char *want = tu_read_file(gpath, NULL);
    ck_assert_msg(want != NULL, "missing %s (run with SS_UPDATE_GOLDEN=1)", gpath);
    ck_assert_msg(strcmp(got, want) == 0, "EXPLAIN of %s differs from %s:\n%s", example, gpath, got);
    free(want);
    free(got);
    free(sql);
    ss_catalog_close(c);
    sqlite3_close(db);
}

START_TEST(test_golden_paper_digest) { golden("paper_digest"); }
END_TEST
START_TEST(test_golden_chatbot) { golden("chatbot"); }
END_TEST
START_TEST(test_golden_relational) { golden("relational"); }
END_TEST
START_TEST(test_golden_support_triage) { golden("support_triage"); }
END_TEST
START_TEST(test_golden_entity_resolution) { golden("entity_resolution"); }
END_TEST

/* ---- semantic errors: exact messages with line:column ---- */

static const char *papers_sql =
    "CREATE STREAM papers (id INT KEY, title TEXT, abstract TEXT, year INT);\n"
    "CREATE STREAM authors (paper_id INT KEY, name TEXT, affiliation TEXT);\n";

typedef struct err_case {
    const char *sql;
    const char *want; /* exact error message */
} err_case_t;

static const err_case_t err_cases[] = {
    {"CREATE VIEW v AS\nSELECT id, title\nFROM papers WHERE SEM_FILTER('{abstrct} is about databases');",
     "3:32: unknown column \"abstrct\" in stream papers (did you mean \"abstract\"?)"},
    {"CREATE VIEW v AS SELECT titel FROM papers;",
     "1:25: unknown column \"titel\" in stream papers (did you mean \"title\"?)"},
    {"CREATE VIEW v AS SELECT p.id, title FROM papers p JOIN papers q ON p.id = q.id;",
     "1:31: column \"title\" is ambiguous: it is in p and q (write p.title or q.title)"},
    {"CREATE VIEW v AS SELECT q.title FROM papers p;",
     "1:25: unknown table or alias \"q\" (did you mean \"p\"?)"},
    {"CREATE VIEW v AS SELECT * FROM paper;",
     "1:32: unknown stream or view \"paper\" (did you mean \"papers\"?)"},
    {"CREATE VIEW v AS SELECT id FROM papers ORDER BY SEM_SCORE('how novel is {abstract}');",
     "1:49: ORDER BY SEM_SCORE needs a LIMIT (a semantic ranking keeps only the top k rows)"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE year > 2000 OR SEM_FILTER('{title} is short');",
     "1:61: SEM_FILTER must be a top-level AND term of WHERE (not under OR/NOT or inside an expression)"},
    {"CREATE VIEW v AS SELECT year, SEM_AGG('a {title}') AS a, SEM_AGG('b {title}') AS b FROM papers GROUP BY year;",
     "1:58: only one SEM_AGG per view"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE SEM_FILTER('{ titel } is short');",
     "1:60: unknown column \"titel\" in stream papers (did you mean \"title\"?)"},
    {"CREATE VIEW v AS SELECT title, COUNT(*) AS n FROM papers GROUP BY year;",
     "1:25: column \"title\" must appear in GROUP BY or be used inside an aggregate"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE SEM_FILTER('is this good?');",
     "1:57: template references no column, so every row would get the same answer (write {column})"},
    {"CREATE VIEW v AS SELECT p.id FROM papers p SEM_JOIN authors a ON 'the paper {p.title} fits {p.abstract}';",
     "1:66: SEM_JOIN template references no column of the right side (write {alias.column})"},
    {"CREATE VIEW v AS SELECT id, SEM_MAP('tl;dr: {abstract}', model = 'big') AS t FROM papers;",
     "1:58: unknown model \"big\" (create it with CREATE MODEL big WITH (...))"},
    {"CREATE VIEW v AS SELECT title || 'x' AS a, year + title AS b FROM papers;",
     "1:44: operator + needs numbers, got INT and TEXT"},
    /* type errors at CREATE, as PostgreSQL reports them (issue 12) */
    {"CREATE VIEW v AS SELECT id FROM papers WHERE year = 'abc';",
     "1:53: invalid input syntax for type integer: 'abc'"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE title > 5;",
     "1:54: comparison types text and integer cannot be matched"},
    {"CREATE VIEW v AS SELECT p.id FROM papers p JOIN authors a ON p.title = a.paper_id;",
     "1:62: JOIN ... ON cannot compare title with paper_id: operator does not exist: TEXT = INT"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE year;", "1:46: argument of WHERE must be type boolean, not integer"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE year > 2000 AND title;",
     "1:62: argument of WHERE must be type boolean, not text"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE NOT year;", "1:50: argument of NOT must be type boolean, not integer"},
    {"CREATE VIEW v AS SELECT LOWER(year) AS y FROM papers;",
     "1:25: function lower(integer) does not exist (it takes text; cast the argument: LOWER(x::TEXT))"},
    {"CREATE VIEW v AS SELECT COALESCE(title, 1) AS t FROM papers;",
     "1:41: COALESCE types text and integer cannot be matched"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE year LIKE '19%';",
     "1:51: operator does not exist: INT LIKE TEXT (LIKE matches text)"},
    {"CREATE VIEW v AS SELECT year, COUNT(*) AS n FROM papers GROUP BY year HAVING COUNT(*);",
     "1:78: argument of HAVING must be type boolean, not integer"},
    {"CREATE VIEW v WITH (model = 'nope') AS SELECT id FROM papers;",
     "1:21: unknown model \"nope\" (create it with CREATE MODEL)"},
    {"CREATE VIEW v AS SELECT id, id FROM papers;",
     "1:29: duplicate output column \"id\" in view v (rename one with AS)"},
    {"CREATE VIEW v AS SELECT year, COUNT(*) AS n FROM papers GROUP BY year / 10;",
     "1:25: column \"year\" must appear in GROUP BY or be used inside an aggregate"},
    {"CREATE VIEW v AS SELECT COUNT(*) AS n FROM papers GROUP BY COUNT(*);",
     "1:60: GROUP BY cannot use an aggregate or a semantic function"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE COUNT(*) > 1;",
     "1:46: aggregates are not allowed in WHERE (use HAVING)"},
    {"CREATE VIEW v AS SELECT lowr(title) FROM papers;",
     "1:25: unknown function LOWR (did you mean LOWER?)"},
    {"CREATE VIEW v AS SELECT substr(title) AS s FROM papers;", "1:25: SUBSTR takes 2 to 3 arguments, not 1"},
    {"CREATE VIEW papers AS SELECT id FROM papers;", "1:13: stream papers already exists"},
    {"CREATE VIEW v AS SELECT id FROM papers;\nCREATE VIEW v AS SELECT id FROM papers;",
     "2:13: view v already exists (use IF NOT EXISTS to ignore)"},
    {"CREATE STREAM s (a INT, b TEXT, a TEXT);",
     "1:33: duplicate column \"a\""},
    {"CREATE STREAM s (a INT) WITH (format = 'avro');",
     "1:31: unknown format 'avro' for stream s (expected json, debezium or upsert)"},
    {"CREATE STREAM s (a INT) WITH (format = 'upsert');",
     "1:31: format 'upsert' needs a KEY column in stream s (a message replaces the row with its key)"},
    {"CREATE STREAM s (a INT KEY, b TEXT) WITH (key = 'a, c');",
     "1:43: key \"c\" is not a column of stream s"},
    {"CREATE STREAM s (a INT KEY, b TEXT) WITH (append_only = true);",
     "1:43: stream s: append_only = true cannot be combined with a KEY (its messages are upserts)"},
    {"CREATE STREAM s (a INT, b TEXT) WITH (ttl = '1 hour', append_only = true);",
     "1:55: stream s: append_only = true cannot be combined with a ttl (rows expire)"},
    {"CREATE STREAM s (a INT, b TEXT) WITH (format = 'debezium', append_only = 1);",
     "1:60: stream s: append_only = true cannot be combined with a format of changes (debezium, upsert)"},
    {"CREATE STREAM s (a INT) WITH (append_only = 'yes');",
     "1:31: option append_only: must be TRUE or FALSE, not 'yes'"},
    {"CREATE STREAM s (a INT KEY, b TEXT) WITH (key = 'b');",
     "1:43: key \"b\" is not one of the KEY columns declared for stream s"},
    {"CREATE MODEL m WITH (backend = 'local');",
     "1:14: model m with backend 'local' needs path='...'"},
    {"CREATE MODEL m WITH (backend = 'openai', path = 'x');",
     "1:14: model m with backend 'openai' needs url='...'"},
    {"CREATE MODEL m WITH (backend = 'vllm', url = 'x');",
     "1:22: unknown backend 'vllm' for model m (expected local or openai)"},
    {"CREATE VIEW v AS LLM_GENERATE(prompt = 'Answer {question}', context = STREAM(papers));",
     "1:18: unknown column \"question\" in stream papers"},
    {"CREATE VIEW v AS LLM_GENERATE(prompt = 'Answer about {title}', context = STREAM(papers), key = nme);",
     "1:90: unknown column \"nme\" in stream papers"},
    {"CREATE VIEW v AS LLM_GENERATE(prompt = 'About {title}', context = STREAM(papers), maintain = 'always');",
     "1:83: MAINTAIN must be 'recompute', 'dependency', 'append' or 'none', not 'always'"},
    {"CREATE VIEW v AS LLM_GENERATE(prompt = 'About {title}', context = STREAM(papers), tau = 0.1);",
     "1:83: TAU needs MAINTAIN = 'dependency'"},
    {"CREATE VIEW v AS LLM_GENERATE(prompt = 'About {title}', context = STREAM(papers), maintain = 'dependency', "
     "tau = 2);",
     "1:108: TAU must be a number between 0 and 1"},
    {"CREATE VIEW v AS LLM_GENERATE(prompt = 'About {title}', context = STREAM(papers), kv_reuse = 'docs');",
     "1:83: KV_REUSE must be 'prefix' or 'chunks', not 'docs'"},
    {"CREATE VIEW v AS LLM_GENERATE(prompt = 'About {title}', context = STREAM(papers), kv_recompute = 0.2);",
     "1:83: KV_RECOMPUTE needs KV_REUSE = 'chunks'"},
    {"CREATE VIEW v AS LLM_GENERATE(prompt = 'About {title}', context = STREAM(papers), kv_reuse = 'chunks', "
     "kv_recompute = 1.5);",
     "1:104: KV_RECOMPUTE must be a number between 0 and 1"},
    {"CREATE VIEW v AS SELECT id, SEM_MAP('tl;dr {abstract}', max_tokns = 20) AS t FROM papers;",
     "1:57: unknown option max_tokns for sem_map (did you mean max_tokens?) (known: max_tokens, temperature, memo, schema, model)"},
    /* issue 15 operators */
    {"CREATE VIEW v AS SELECT id, SEM_EXTRACT('{title}', 'who TEXT, age INTEGR') FROM papers;",
     "1:67: SEM_EXTRACT column list: unknown type INTEGR (TEXT, INT, REAL, NUMERIC or BOOLEAN)"},
    {"CREATE VIEW v AS SELECT id, SEM_EXTRACT('{title}', 'title TEXT') FROM papers;",
     "1:53: SEM_EXTRACT column \"title\" is already a column of the input (rename it)"},
    {"CREATE VIEW v AS SELECT id, SEM_MAP('{title}', schema => '{\"type\": \"object\", \"anyOf\": []}') AS j FROM papers;",
     "1:48: option schema: JSON schema at /: unsupported keyword anyOf"},
    {"CREATE VIEW v AS SELECT id, SEM_CLASSIFY('{title}', 'db') AS c FROM papers;",
     "1:29: SEM_CLASSIFY needs at least two labels"},
    {"CREATE VIEW v AS SELECT id, SEM_CLASSIFY('{title}', 'db', 'ml', 'db') AS c FROM papers;",
     "1:65: SEM_CLASSIFY label 'db' is given twice"},
    {"CREATE VIEW v AS SELECT * FROM SEM_SEARCH(papers, 'query processing', 0);",
     "1:32: SEM_SEARCH needs k from 1 to 100000"},
    {"CREATE VIEW v AS SELECT * FROM SEM_SEARCH(papers, 'query processing', 3, text => '{titel}');",
     "1:76: unknown column \"titel\" in stream papers (did you mean \"title\"?)"},
    {"CREATE VIEW v AS SELECT * FROM papers a SEM_SIM_JOIN authors b ON '{a.title} {b.nme}' LIMIT 2;",
     "1:79: unknown column \"nme\" in b (stream authors) (did you mean \"name\"?)"},
    {"CREATE VIEW v AS SELECT id, SEM_DEDUP('{title}', threshold = 'high') AS e FROM papers;",
     "1:50: option threshold must be a number"},
    {"CREATE VIEW v AS SELECT id, SEM_DEDUP('{titel}') AS e FROM papers;",
     "1:41: unknown column \"titel\" in stream papers (did you mean \"title\"?)"},
    {"CREATE VIEW v AS SELECT SEM_CLUSTER('{title}', 0) AS c, count(*) AS n FROM papers GROUP BY 1;",
     "1:48: SEM_CLUSTER needs a number of groups from 1 to 1000"},
    {"CREATE VIEW v AS SELECT SEM_GROUP('{title}', 3, memo = 'keep') AS c, count(*) AS n FROM papers GROUP BY 1;",
     "1:49: unknown option memo for sem_group (known: max_tokens, temperature, diversity, model)"},
    {"CREATE VIEW v AS SELECT year, SEM_AGG('{title}', fan_in = 1) AS s FROM papers GROUP BY year;",
     "1:50: option fan_in must be an integer >= 2"},
    {"CREATE VIEW v AS SELECT year, SEM_AGG('{title}', memo = 'forever') AS s FROM papers GROUP BY year;",
     "1:50: option memo must be 'prune' or 'keep'"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE SEM_FILTER('it''s {abstrct}');",
     "1:65: unknown column \"abstrct\" in stream papers (did you mean \"abstract\"?)"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE SEM_FILTER('first line\n  then {yeer}');",
     "2:9: unknown column \"yeer\" in stream papers (did you mean \"year\"?)"},
    {"CREATE VIEW v AS SELECT id FROM papers ORDER BY SEM_RANK('best {title}'), id LIMIT 3;",
     "1:49: ORDER BY SEM_RANK cannot be combined with other ORDER BY terms"},
    {"CREATE VIEW v AS SELECT id FROM papers ORDER BY SEM_RANK('best {title}', partition_by = 'yeer') LIMIT 3;",
     "1:74: unknown column \"yeer\" in stream papers (did you mean \"year\"?)"},
    {"CREATE VIEW v AS SELECT year, SEM_MAP('x {title}') AS m, COUNT(*) AS n FROM papers GROUP BY year;",
     "1:31: SEM_MAP of grouped rows must be one of the GROUP BY items (GROUP BY SEM_MAP(...) or its alias)"},
    /* query structure */
    {"CREATE VIEW v AS SELECT id, title FROM papers UNION SELECT paper_id FROM authors;",
     "1:53: each UNION query must have the same number of columns (2 on the left, 1 here)"},
    {"CREATE VIEW v AS SELECT id FROM papers UNION SELECT name FROM authors;",
     "1:46: UNION types INT and TEXT cannot be matched (column 1, \"id\")"},
    {"CREATE VIEW v AS WITH r AS (SELECT id FROM r) SELECT id FROM r;",
     "1:44: WITH query r refers to itself (recursive queries are not supported)"},
    {"CREATE VIEW v AS WITH r (a, b) AS (SELECT id FROM papers) SELECT a FROM r;",
     "1:23: WITH query r has 1 columns available but 2 columns specified"},
    {"CREATE VIEW v AS WITH r AS (SELECT id FROM papers WHERE yr > 1) SELECT id FROM papers;",
     "1:57: unknown column \"yr\" in stream papers"},
    {"CREATE VIEW v AS SELECT id, (SELECT id, year FROM papers) AS x FROM authors;",
     "1:30: subquery must return only one column"},
    {"CREATE VIEW v AS SELECT paper_id, (SELECT title FROM papers) AS t FROM authors;",
     "1:36: a scalar subquery must return at most one row: use an aggregate (MAX, COUNT, ...), LIMIT 1, or a "
     "condition on every KEY column"},
    {"CREATE VIEW v AS SELECT paper_id FROM authors WHERE paper_id IN (SELECT id, year FROM papers);",
     "1:66: subquery has too many columns (IN needs one)"},
    {"CREATE VIEW v AS SELECT paper_id FROM authors a WHERE paper_id NOT IN "
     "(SELECT id FROM papers p WHERE p.year > a.paper_id);",
     "1:102: NOT IN / IN as a value with a correlated condition other than = is not supported (write NOT EXISTS "
     "(... AND inner = outer))"},
    {"CREATE VIEW v AS SELECT paper_id FROM authors a WHERE paper_id IN "
     "(SELECT MAX(id) FROM papers p WHERE p.title = a.name GROUP BY year);",
     "1:113: unknown table or alias \"a\" (did you mean \"p\"?) (a subquery with GROUP BY, aggregates, UNION or "
     "LIMIT cannot refer to the enclosing query)"},
    {"CREATE VIEW v AS SELECT paper_id, (SELECT COUNT(*) FROM papers p WHERE p.year > a.paper_id) AS n FROM authors a;",
     "1:72: a correlated scalar subquery may only correlate with equalities (inner = outer)"},
    {"CREATE VIEW v AS SELECT paper_id, (SELECT title FROM papers p WHERE p.year = a.paper_id) AS t FROM authors a;",
     "1:36: a correlated scalar subquery must be an aggregate (COUNT, SUM, MAX, ...) or look a stream up by all "
     "its KEY columns, so that it returns at most one row"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE title IN (SELECT paper_id FROM authors);",
     "1:46: cannot compare TEXT with INT in a subquery condition"},
    {"CREATE VIEW v AS SELECT id FROM papers WHERE ROW_NUMBER() OVER (ORDER BY id) < 3;",
     "1:46: window function ROW_NUMBER is only allowed in the SELECT list"},
    {"CREATE VIEW v AS SELECT id, LAG(id) OVER (ORDER BY id) AS l FROM papers;",
     "1:29: window function LAG is not supported (ROW_NUMBER, RANK, DENSE_RANK, COUNT, SUM, AVG, MIN and MAX are)"},
    {"CREATE VIEW v AS SELECT year, COUNT(*) AS n, RANK() OVER (ORDER BY COUNT(*)) AS r FROM papers GROUP BY year;",
     "1:46: window functions over grouped rows are not supported (group in a subquery or an upstream view, then "
     "apply the window to it)"},
    {"CREATE VIEW v AS SELECT year, (SELECT COUNT(*) FROM authors) AS n FROM papers GROUP BY year;",
     "1:31: a subquery in the SELECT list of a grouped query is not supported (compute it in an upstream view, or "
     "move it to WHERE)"},
    {"CREATE VIEW v AS SELECT * FROM papers JOIN authors USING (name);",
     "1:59: column \"name\" named in USING is not in the left side of the join"},
    {"CREATE VIEW v AS SELECT id FROM papers p WHERE EXISTS "
     "(SELECT 1 FROM authors a WHERE a.paper_id = p.id AND a.nme = 'x');",
     "1:108: unknown column \"nme\" in a (stream authors) (did you mean \"name\"?)"},
    {"CREATE VIEW v AS SELECT id FROM papers ORDER BY SEM_SCORE('{title}') LIMIT 3 OFFSET 1;",
     "1:49: OFFSET cannot be combined with ORDER BY SEM_SCORE"},
    /* aggregates */
    {"CREATE VIEW v AS SELECT year, STRING_AGG(title, abstract) AS s FROM papers GROUP BY year;",
     "1:49: STRING_AGG's separator must be a text literal"},
    {"CREATE VIEW v AS SELECT year, ARRAY_AGG(DISTINCT title ORDER BY id) AS s FROM papers GROUP BY year;",
     "1:65: in an aggregate with DISTINCT, ORDER BY expressions must appear in the argument list"},
    {"CREATE VIEW v AS SELECT year, BOOL_AND(id) AS s FROM papers GROUP BY year;",
     "1:31: BOOL_AND needs a boolean, got INT"},
    {"CREATE VIEW v AS SELECT year, STDDEV(DISTINCT id) AS s FROM papers GROUP BY year;",
     "1:31: STDDEV(DISTINCT ..) is not supported"},
    {"CREATE VIEW v AS SELECT year, VARIANCE(title) AS s FROM papers GROUP BY year;",
     "1:31: VARIANCE needs a number, got TEXT"},
    {"CREATE VIEW v AS SELECT year, STRING_AGG(title) AS s FROM papers GROUP BY year;",
     "1:31: STRING_AGG takes two arguments (value, separator)"},
};

START_TEST(test_errors)
{
    const err_case_t *tc = &err_cases[_i];
    sqlite3 *db;
    ss_catalog_t *c = mem_catalog(&db);
    char err[SS_ERRSZ] = "";
    ck_assert_msg(run_sql(c, papers_sql, err, sizeof err) == SS_OK, "%s", err);
    int rc = run_sql(c, tc->sql, err, sizeof err);
    ck_assert_msg(rc != SS_OK, "case %d should fail: %s", _i, tc->sql);
    ck_assert_msg(strcmp(err, tc->want) == 0, "case %d:\n got: %s\nwant: %s", _i, err, tc->want);
    ss_catalog_close(c);
    sqlite3_close(db);
}
END_TEST

/* ---- plan structure ---- */

static const char *base_sql =
    "CREATE STREAM papers (id INT KEY, title TEXT, abstract TEXT, year INT);\n"
    "CREATE STREAM authors (author_id INT KEY, paper_id INT, name TEXT);\n"
    "CREATE MODEL judge WITH (backend = 'openai', url = 'http://localhost:8080/v1');\n";

/* Plans base_sql + sql; returns the plan (caller frees) and the catalog/db to close. */
static ss_plan_t *plan_sql(const char *sql, ss_catalog_t **cat, sqlite3 **db)
{
    *cat = mem_catalog(db);
    char err[SS_ERRSZ] = "";
    ck_assert_msg(run_sql(*cat, base_sql, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(run_sql(*cat, sql, err, sizeof err) == SS_OK, "%s", err);
    ss_plan_t *p = NULL;
    ck_assert_msg(ss_plan_build(*cat, &p, err, sizeof err) == SS_OK, "%s", err);
    return p;
}

static void done(ss_plan_t *p, ss_catalog_t *c, sqlite3 *db)
{
    ss_plan_free(p);
    ss_catalog_close(c);
    sqlite3_close(db);
}

/* The chain of node kinds from view v's VIEW node back to its first input, as text. */
static const char *chain(const ss_plan_t *p, const char *view, char *buf, size_t n)
{
    const ss_plan_node_t *v = NULL;
    for (int i = 0; i < p->n; i++)
        if (p->nodes[i]->kind == SS_PN_VIEW && !strcmp(p->nodes[i]->label, view))
            v = p->nodes[i];
    ck_assert_ptr_nonnull(v);
    buf[0] = 0;
    for (const ss_plan_node_t *x = v; x; x = x->nin ? x->in[0] : NULL) {
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s%s%s", ss_plan_kind_name(x->kind), buf[0] ? "<" : "", buf);
        snprintf(buf, n, "%s", tmp);
        if (x != v && x->kind == SS_PN_VIEW)
            break;
    }
    return buf;
}

static const ss_plan_node_t *first(const ss_plan_t *p, const char *view, ss_plan_kind_t k)
{
    for (int i = 0; i < p->n; i++)
        if (p->nodes[i]->kind == k && !strcmp(p->nodes[i]->view, view))
            return p->nodes[i];
    ck_abort_msg("no %s node in view %s", ss_plan_kind_name(k), view);
    return NULL;
}

/* Window state (issue 13): per-window top-k, GROUP and SEM_AGG per window, their join. */
START_TEST(test_window_state)
{
    ss_catalog_t *c;
    sqlite3 *db;
    ss_plan_t *p = plan_sql(
        "CREATE STREAM bids (id INT, price INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND);"
        "CREATE VIEW t AS SELECT id, window_end FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)"
        " ORDER BY SEM_SCORE('{price}', partition_by = 'window_end') LIMIT 2;"
        "CREATE VIEW g AS SELECT window_start, COUNT(*) AS n, SEM_AGG('{price}') AS s"
        " FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) GROUP BY window_start;"
        "CREATE VIEW u AS SELECT id FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)"
        " ORDER BY SEM_SCORE('{price}') LIMIT 2;",
        &c, &db);
    const ss_plan_node_t *t = first(p, "t", SS_PN_SEM_TOPK);
    ck_assert_int_eq(t->ngroup, 1);
    ck_assert_str_eq(t->in[0]->schema->names[t->group_cols[0]], "window_end");
    ck_assert_str_eq(ss_plan_opt(t, "window_bound"), "end");
    ck_assert_ptr_null(ss_plan_opt(first(p, "u", SS_PN_SEM_TOPK), "window_col")); /* the top k of all rows */
    const ss_plan_node_t *j = first(p, "g", SS_PN_JOIN);
    ck_assert_int_eq(ss_plan_opt_int(j, "window_lcol", -1), 0);
    ck_assert_int_eq(ss_plan_opt_int(j, "window_rcol", -1), 0);
    ck_assert_int_eq(ss_plan_opt_int(j, "window_ladd_us", -1), 10000000); /* window_start + size */
    ck_assert_str_eq(ss_plan_opt(first(p, "g", SS_PN_SEM_AGG), "window_bound"), "start");
    done(p, c, db);
}
END_TEST

/* Valid under PostgreSQL's rules (issue 12 H): each must plan. */
START_TEST(test_types_ok)
{
    static const char *ok[] = {
        /* GROUP BY names an input column before an output alias: this grouped by COUNT(*) */
        "CREATE VIEW g1 AS SELECT year, COUNT(*) AS id FROM papers GROUP BY year, id;",
        "CREATE VIEW g2 AS SELECT LOWER(title) AS title, COUNT(*) AS n FROM papers GROUP BY title;",
        /* an untyped string literal takes the type of the number it meets */
        "CREATE VIEW l1 AS SELECT id FROM papers WHERE year = '2020' AND id + '1' > 2;",
        "CREATE VIEW l2 AS SELECT id, COALESCE(year, '0') AS y FROM papers;",
        "CREATE VIEW b1 AS SELECT id FROM papers WHERE TRUE AND (year > 1 OR NULL);",
        "CREATE VIEW j1 AS SELECT p.id FROM papers p JOIN authors a ON p.id = a.paper_id AND a.name <> p.title;",
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(ok); i++) {
        sqlite3 *db;
        ss_catalog_t *c = mem_catalog(&db);
        char err[SS_ERRSZ] = "";
        ck_assert_msg(run_sql(c, papers_sql, err, sizeof err) == SS_OK, "%s", err);
        ck_assert_msg(run_sql(c, ok[i], err, sizeof err) == SS_OK, "%s: %s", ok[i], err);
        ss_catalog_close(c);
        sqlite3_close(db);
    }
}
END_TEST

START_TEST(test_sem_filter_split)
{
    sqlite3 *db;
    ss_catalog_t *c;
    ss_plan_t *p = plan_sql("CREATE VIEW v AS SELECT title, SEM_MAP('tl;dr {abstract}', model = judge) AS t FROM papers\n"
                            "WHERE SEM_FILTER('{title} is about {abstract}') AND year > 2020 AND SEM_FILTER('{abstract} is new')\n"
                            "  AND title IS NOT NULL;", &c, &db);
    char buf[512];
    /* ordinary predicates first (one FILTER), then each SEM_FILTER, then SEM_MAP and the projection */
    ck_assert_str_eq(chain(p, "v", buf, sizeof buf), "source<filter<sem_filter<sem_filter<sem_map<project<view");
    const ss_plan_node_t *f = first(p, "v", SS_PN_SEM_FILTER);
    ck_assert_int_eq(f->tmpl->nparts, 3);
    ck_assert_int_eq(f->tmpl->parts[0].col, 1); /* {title} */
    ck_assert_ptr_null(f->tmpl->parts[0].text);
    ck_assert_str_eq(f->tmpl->parts[1].text, " is about ");
    ck_assert_int_eq(f->tmpl->parts[2].col, 2); /* {abstract} */
    ck_assert_ptr_null(f->model);
    const ss_plan_node_t *m = first(p, "v", SS_PN_SEM_MAP);
    ck_assert_str_eq(m->model, "judge");
    ck_assert_int_eq(m->schema->n, 5);
    ck_assert_str_eq(m->schema->names[4], "t");
    ck_assert_int_eq(m->schema->is_key[0], 1);
    const ss_plan_node_t *pr = first(p, "v", SS_PN_PROJECT);
    ck_assert_int_eq(pr->nexprs, 2);
    ck_assert_int_eq(pr->exprs[1]->col, 4);
    ck_assert_int_eq(pr->schema->is_key[0] + pr->schema->is_key[1], 0); /* key dropped: whole row */
    done(p, c, db);
    /* a view's WITH (model = ..) is the default of its semantic operators */
    p = plan_sql("CREATE VIEW w WITH (model = judge, sink_topic = 'w_out') AS\n"
                 "  SELECT id FROM papers WHERE SEM_FILTER('{title} is short');", &c, &db);
    ck_assert_str_eq(first(p, "w", SS_PN_SEM_FILTER)->model, "judge");
    ck_assert_str_eq(ss_plan_opt(first(p, "w", SS_PN_VIEW), "sink_topic"), "w_out");
    done(p, c, db);
}
END_TEST

START_TEST(test_sem_join_topk_agg)
{
    sqlite3 *db;
    ss_catalog_t *c;
    ss_plan_t *p = plan_sql(
        "CREATE VIEW j AS SELECT p.id, a.name FROM papers p SEM_JOIN authors a\n"
        "  ON '{p.title} could be written by {name}' WITH (join_candidates = 5, threshold = 0.5);\n"
        "CREATE VIEW k AS SELECT id, title FROM papers WHERE year > 2000 ORDER BY SEM_SCORE('novelty of {abstract}') LIMIT 5;\n"
        "CREATE VIEW g AS SELECT year, SEM_AGG('themes of {title}', fan_in = 4, memo = 'keep') AS themes FROM papers GROUP BY year;\n"
        "CREATE VIEW gc AS SELECT year, COUNT(*) AS n, SEM_AGG('theme of {title}') AS theme FROM papers GROUP BY year;\n",
        &c, &db);
    char buf[512];
    ck_assert_str_eq(chain(p, "j", buf, sizeof buf), "source<sem_join<project<view");
    const ss_plan_node_t *j = first(p, "j", SS_PN_SEM_JOIN);
    ck_assert_int_eq(j->nin, 2);
    ck_assert_str_eq(j->in[1]->label, "authors");
    ck_assert_int_eq(j->tmpl->parts[0].side, 0);
    ck_assert_int_eq(j->tmpl->parts[0].col, 1);
    ck_assert_str_eq(j->tmpl->parts[0].name, "p.title");
    ck_assert_int_eq(j->tmpl->parts[2].side, 1);
    ck_assert_int_eq(j->tmpl->parts[2].col, 2);
    ck_assert_int_eq(ss_plan_opt_int(j, "join_candidates", 0), 5);
    ck_assert(ss_plan_opt_real(j, "threshold", 0) == 0.5);
    const ss_plan_node_t *jv = first(p, "j", SS_PN_VIEW);
    ck_assert_int_eq(jv->schema->is_key[0] + jv->schema->is_key[1], 0);

    ck_assert_str_eq(chain(p, "k", buf, sizeof buf), "source<filter<sem_topk<project<view");
    const ss_plan_node_t *t = first(p, "k", SS_PN_SEM_TOPK);
    ck_assert_int_eq(t->sem, SS_SEM_SCORE);
    ck_assert_int_eq(t->limit, 5);
    ck_assert_int_eq(t->desc, 1);
    ck_assert_int_eq(first(p, "k", SS_PN_VIEW)->schema->is_key[0], 1);

    ck_assert_str_eq(chain(p, "g", buf, sizeof buf), "source<sem_agg<view");
    const ss_plan_node_t *g = first(p, "g", SS_PN_SEM_AGG);
    ck_assert_int_eq(g->ngroup, 1);
    ck_assert_int_eq(g->group_cols[0], 3);
    ck_assert_str_eq(g->schema->names[1], "themes");
    ck_assert_int_eq(g->schema->is_key[0], 1);
    ck_assert_int_eq(g->schema->is_key[1], 0);
    ck_assert_int_eq(ss_plan_opt_int(g, "fan_in", 0), 4);
    ck_assert_str_eq(ss_plan_opt(g, "memo"), "keep");

    /* SEM_AGG next to COUNT: GROUP and SEM_AGG over the same input, joined on the group key */
    ck_assert_str_eq(chain(p, "gc", buf, sizeof buf), "source<group<join<project<view");
    const ss_plan_node_t *gj = first(p, "gc", SS_PN_JOIN);
    ck_assert_int_eq(gj->in[1]->kind, SS_PN_SEM_AGG);
    ck_assert_int_eq(gj->nkeys, 1);
    const ss_plan_node_t *gp = first(p, "gc", SS_PN_PROJECT);
    ck_assert_int_eq(gp->exprs[0]->col, 0);
    ck_assert_int_eq(gp->exprs[1]->col, 1);
    ck_assert_int_eq(gp->exprs[2]->col, 3);
    const ss_plan_node_t *gv = first(p, "gc", SS_PN_VIEW);
    ck_assert_int_eq(gv->schema->is_key[0], 1);
    ck_assert_int_eq(gv->schema->is_key[1] + gv->schema->is_key[2], 0);
    ck_assert_int_eq(gv->schema->types[2], SS_COL_TEXT);
    done(p, c, db);
}
END_TEST

START_TEST(test_relational)
{
    sqlite3 *db;
    ss_catalog_t *c;
    ss_plan_t *p = plan_sql(
        "CREATE VIEW n AS SELECT p.year, COUNT(*) AS n, MAX(a.author_id) AS m FROM papers p\n"
        "  JOIN authors a ON a.paper_id = p.id AND a.name <> p.title WHERE p.year > 1990 GROUP BY p.year HAVING COUNT(*) > 2;\n"
        "CREATE VIEW d AS SELECT DISTINCT year FROM papers ORDER BY year DESC LIMIT 3;\n",
        &c, &db);
    char buf[512];
    ck_assert_str_eq(chain(p, "n", buf, sizeof buf), "source<filter<join<group<filter<project<view");
    const ss_plan_node_t *j = first(p, "n", SS_PN_JOIN);
    ck_assert_int_eq(j->nkeys, 1);
    ck_assert_int_eq(j->lkeys[0], 0); /* p.id */
    ck_assert_int_eq(j->rkeys[0], 1); /* a.paper_id */
    ck_assert_ptr_nonnull(j->pred);   /* a.name <> p.title stays as residual */
    const ss_plan_node_t *g = first(p, "n", SS_PN_GROUP);
    ck_assert_int_eq(g->naggs, 2);
    ck_assert_int_eq(g->aggs[0].fn, SS_AGG_COUNT);
    ck_assert_ptr_null(g->aggs[0].arg);
    ck_assert_int_eq(g->aggs[1].fn, SS_AGG_MAX);
    ck_assert_int_eq(g->aggs[1].arg->col, 4);
    const ss_plan_node_t *v = first(p, "n", SS_PN_VIEW);
    ck_assert_int_eq(v->schema->is_key[0], 1);
    ck_assert_int_eq(v->schema->types[1], SS_COL_INT);
    ck_assert_str_eq(chain(p, "d", buf, sizeof buf), "source<project<distinct<topk<view");
    done(p, c, db);
    /* GROUP BY expressions: computed by a PROJECT before the GROUP, matched by text afterwards */
    p = plan_sql("CREATE VIEW dec AS SELECT year / 10 AS decade, LOWER(title) AS t, COUNT(*) AS n FROM papers\n"
                 "  GROUP BY decade, LOWER(title) HAVING year / 10 > 190;", &c, &db);
    ck_assert_str_eq(chain(p, "dec", buf, sizeof buf), "source<project<group<filter<project<view");
    const ss_plan_node_t *pre = first(p, "dec", SS_PN_PROJECT);
    ck_assert_int_eq(pre->nexprs, 6);
    ck_assert_str_eq(pre->schema->names[4], "year / 10");
    ck_assert_str_eq(pre->schema->names[5], "lower(title)");
    const ss_plan_node_t *gg = first(p, "dec", SS_PN_GROUP);
    ck_assert_int_eq(gg->ngroup, 2);
    ck_assert_int_eq(gg->group_cols[0], 4);
    ck_assert_int_eq(gg->group_cols[1], 5);
    const ss_plan_node_t *dv = first(p, "dec", SS_PN_VIEW);
    ck_assert_int_eq(dv->schema->is_key[0] + dv->schema->is_key[1], 2);
    ck_assert_int_eq(dv->schema->types[0], SS_COL_INT);
    ck_assert_int_eq(dv->schema->types[1], SS_COL_TEXT);
    done(p, c, db);
}
END_TEST

START_TEST(test_pushdown)
{
    sqlite3 *db;
    ss_catalog_t *c;
    ss_plan_t *p = plan_sql(
        "CREATE VIEW s AS SELECT p.title, a.name FROM papers p SEM_JOIN authors a ON '{p.title} by {a.name}'\n"
        "  WHERE p.year > 2020 AND a.name LIKE 'A%' AND p.id <> a.paper_id;\n"
        "CREATE VIEW l AS SELECT p.title, a.name FROM papers p LEFT JOIN authors a ON a.paper_id = p.id\n"
        "  WHERE a.name IS NULL AND p.year > 2000;\n", &c, &db);
    char buf[512];
    /* single-side conjuncts filter each input before the (semantic) join; the mixed one stays */
    ck_assert_str_eq(chain(p, "s", buf, sizeof buf), "source<filter<sem_join<filter<project<view");
    const ss_plan_node_t *j = first(p, "s", SS_PN_SEM_JOIN);
    ck_assert_int_eq(j->in[1]->kind, SS_PN_FILTER);
    ck_assert_int_eq(j->in[0]->kind, SS_PN_FILTER);
    /* the right side of a LEFT JOIN is never filtered early (that would change the result) */
    ck_assert_str_eq(chain(p, "l", buf, sizeof buf), "source<filter<join<filter<project<view");
    const ss_plan_node_t *lj = first(p, "l", SS_PN_JOIN);
    ck_assert_int_eq(lj->in[1]->kind, SS_PN_SOURCE);
    ck_assert_int_eq(lj->join_type, SS_JOIN_LEFT);
    done(p, c, db);
}
END_TEST

/* More AND-ed conditions than the planner keeps is an error, never a condition dropped. */
START_TEST(test_too_many_terms)
{
    sqlite3 *db;
    ss_catalog_t *c = mem_catalog(&db);
    char err[SS_ERRSZ] = "";
    ck_assert_msg(run_sql(c, papers_sql, err, sizeof err) == SS_OK, "%s", err);
    ss_buf_t q = SS_BUF_INIT;
    ss_buf_puts(&q, "CREATE VIEW v AS SELECT p.id FROM papers p JOIN authors a ON a.paper_id = p.id");
    for (int i = 0; i < 70; i++)
        ss_buf_printf(&q, " AND p.year <> %d", i);
    ss_buf_puts(&q, ";");
    ck_assert_int_eq(run_sql(c, ss_buf_cstr(&q), err, sizeof err), SS_ERR_UNSUPPORTED);
    ck_assert_str_eq(err, "1:62: too many AND-ed conditions (71, at most 64)");
    ss_buf_reset(&q);
    ss_buf_puts(&q, "CREATE VIEW w AS SELECT id FROM papers WHERE year > 0");
    for (int i = 0; i < 130; i++)
        ss_buf_printf(&q, " AND year <> %d", i);
    ss_buf_puts(&q, ";");
    ck_assert_int_eq(run_sql(c, ss_buf_cstr(&q), err, sizeof err), SS_ERR_UNSUPPORTED);
    ck_assert_str_eq(err, "1:46: too many AND-ed conditions (131, at most 128)");
    ss_buf_free(&q);
    ss_catalog_close(c);
    sqlite3_close(db);
}
END_TEST

/* Query structures: the operators each plan uses and how they are wired. */
START_TEST(test_query_structure)
{
    sqlite3 *db;
    ss_catalog_t *c;
    ss_plan_t *p = plan_sql(
        "CREATE VIEW u AS SELECT title FROM papers UNION SELECT name FROM authors;\n"
        "CREATE VIEW ua AS SELECT id FROM papers UNION ALL SELECT paper_id FROM authors ORDER BY 1 LIMIT 5 OFFSET 2;\n"
        "CREATE VIEW w AS WITH t AS (SELECT id, year FROM papers WHERE year > 2000), unused AS (SELECT name FROM authors)\n"
        "  SELECT a.id FROM t a JOIN t b ON a.year = b.year;\n"
        "CREATE VIEW f AS SELECT p.id, a.name FROM papers p FULL JOIN authors a ON a.paper_id = p.id;\n"
        "CREATE VIEW r AS SELECT p.id, a.name FROM papers p RIGHT JOIN authors a ON a.paper_id = p.id;\n"
        "CREATE VIEW x AS SELECT p.id, a.name FROM papers p, authors a WHERE a.paper_id = p.id AND p.year > 1;\n"
        "CREATE VIEW i AS SELECT id FROM papers WHERE id IN (SELECT paper_id FROM authors) AND\n"
        "  id NOT IN (SELECT paper_id FROM authors WHERE name = 'x') AND (year > 3 OR EXISTS (SELECT 1 FROM authors));\n"
        "CREATE VIEW s AS SELECT id, (SELECT COUNT(*) FROM authors a WHERE a.paper_id = p.id) AS n FROM papers p;\n"
        "CREATE VIEW t AS SELECT * FROM (SELECT id, year, RANK() OVER (PARTITION BY year ORDER BY id) AS r FROM papers) q\n"
        "  WHERE r <= 3;\n", &c, &db);
    char buf[512];
    const ss_plan_node_t *n = first(p, "u", SS_PN_SETOP);
    ck_assert_int_eq(n->setop, SS_SETOP_UNION);
    ck_assert_int_eq(n->schema->types[0], SS_COL_TEXT);
    ck_assert_str_eq(chain(p, "ua", buf, sizeof buf), "source<project<union<topk<view");
    n = first(p, "ua", SS_PN_TOPK);
    ck_assert_int_eq(n->limit, 5);
    ck_assert_int_eq(n->offset, 2);
    /* a WITH query read twice is one node; one nobody reads plans nothing */
    n = first(p, "w", SS_PN_JOIN);
    ck_assert_ptr_eq(n->in[0], n->in[1]);
    int nodes = 0;
    for (int i = 0; i < p->n; i++)
        nodes += p->nodes[i]->view && !strcmp(p->nodes[i]->view, "w");
    ck_assert_int_eq(nodes, 6); /* source, filter, project (t), join, project, view */
    /* FULL: LEFT JOIN plus the right rows without a match, padded */
    ck_assert_str_eq(chain(p, "f", buf, sizeof buf), "source<join<union<project<view");
    n = first(p, "f", SS_PN_UNION);
    ck_assert_int_eq(n->in[1]->kind, SS_PN_PROJECT);
    ck_assert_int_eq(n->in[1]->in[0]->kind, SS_PN_SEMIJOIN);
    ck_assert_int_eq(n->in[1]->in[0]->semi_mode, SS_SEMI_ANTI);
    ck_assert_int_eq(first(p, "f", SS_PN_JOIN)->join_type, SS_JOIN_LEFT);
    /* RIGHT: a LEFT JOIN with the sides swapped, then the columns back in order */
    n = first(p, "r", SS_PN_JOIN);
    ck_assert_str_eq(n->in[0]->label, "authors");
    ck_assert_str_eq(chain(p, "r", buf, sizeof buf), "source<join<project<project<view");
    /* FROM a, b WHERE a.k = b.k: an equi-join, the other conjunct pushed down */
    n = first(p, "x", SS_PN_JOIN);
    ck_assert_int_eq(n->nkeys, 1);
    ck_assert_int_eq(n->in[0]->kind, SS_PN_FILTER);
    ck_assert_str_eq(chain(p, "x", buf, sizeof buf), "source<filter<join<project<view");
    /* IN: semi; NOT IN: NULL-aware anti; EXISTS under OR: a mark column and a filter */
    ck_assert_str_eq(chain(p, "i", buf, sizeof buf), "source<semijoin<semijoin<semijoin<filter<project<view");
    int modes = 0;
    for (int i = 0; i < p->n; i++)
        if (p->nodes[i]->kind == SS_PN_SEMIJOIN && !strcmp(p->nodes[i]->view, "i"))
            modes |= 1 << (p->nodes[i]->semi_mode * 2 + p->nodes[i]->semi_in);
    ck_assert_int_eq(modes, (1 << 0) | (1 << 3) | (1 << 4)); /* semi, anti+IN, mark */
    /* a correlated COUNT: the inner rows grouped by the correlation column, LEFT JOINed */
    n = first(p, "s", SS_PN_JOIN);
    ck_assert_int_eq(n->join_type, SS_JOIN_LEFT);
    ck_assert_int_eq(n->nkeys, 1);
    ck_assert_int_eq(first(p, "s", SS_PN_GROUP)->ngroup, 1);
    n = first(p, "s", SS_PN_VIEW); /* one value per row: the view keeps the stream's key */
    ck_assert_int_eq(n->schema->is_key[0], 1);
    ck_assert_int_eq(n->schema->is_key[1], 0);
    /* WHERE r <= 3 over a ranking subquery: a per-partition top-3 */
    n = first(p, "t", SS_PN_WINDOW);
    ck_assert_int_eq(n->limit, 3);
    ck_assert_int_eq(n->ngroup, 1);
    ck_assert_int_eq(n->wfns[0].fn, SS_WIN_RANK);
    done(p, c, db);
}
END_TEST

START_TEST(test_generate_and_query)
{
    sqlite3 *db;
    ss_catalog_t *c;
    ss_plan_t *p = plan_sql(
        "CREATE VIEW a AS LLM_GENERATE(prompt = 'Tell me about {title}', context = STREAM(papers),\n"
        "  data_source = STREAM(authors), retrieve = 2, model = judge);\n", &c, &db);
    const ss_plan_node_t *g = first(p, "a", SS_PN_LLM_GENERATE);
    ck_assert_int_eq(g->nin, 2);
    ck_assert_str_eq(g->in[0]->label, "papers");
    ck_assert_str_eq(g->in[1]->label, "authors");
    ck_assert_str_eq(g->model, "judge");
    ck_assert_int_eq(ss_plan_opt_int(g, "retrieve", 0), 2);
    ck_assert_int_eq(g->schema->n, 3);
    ck_assert_str_eq(g->schema->names[0], "id");
    ck_assert_int_eq(g->schema->is_key[0], 1);
    ck_assert_str_eq(g->schema->names[1], "response");
    ck_assert_str_eq(g->schema->names[2], "docs");
    ck_assert_int_eq(g->tmpl->parts[1].col, 1);
    ss_plan_free(p);
    /* EXPLAIN of a query that reads a view, planned as if it were a new view */
    ss_ast_script_t *s = NULL;
    char err[SS_ERRSZ] = "";
    const char *q = "EXPLAIN SELECT id, response FROM a WHERE SEM_FILTER('{response} is polite');";
    ck_assert_int_eq(ss_parse(q, strlen(q), NULL, &s, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_plan_query(c, s->stmts[0]->query, "explained", &p, err, sizeof err), SS_OK);
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_explain(p, "explained", &b), SS_OK);
    ck_assert_msg(strstr(ss_buf_cstr(&b), "#2001 sem_filter  in=#1004 (view a)") != NULL, "%s", ss_buf_cstr(&b));
    ck_assert_ptr_null(strstr(ss_buf_cstr(&b), "llm_generate"));
    ck_assert_int_eq(ss_explain(p, "nope", &b), SS_ERR_NOTFOUND);
    ss_buf_free(&b);
    ss_ast_script_free(s);
    done(p, c, db);
}
END_TEST

/* KV_REUSE = 'chunks' (issue 17 §2): EXPLAIN names it and the fraction recomputed. */
START_TEST(test_generate_kv_reuse_explain)
{
    sqlite3 *db;
    ss_catalog_t *c;
    ss_plan_t *p = plan_sql(
        "CREATE VIEW a AS LLM_GENERATE(prompt = 'Tell me about {title}', context = STREAM(papers),\n"
        "  data_source = STREAM(authors), retrieve = 4, kv_reuse = 'chunks', kv_recompute = 0.3);\n", &c, &db);
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_explain(p, "a", &b), SS_OK);
    ck_assert_msg(strstr(ss_buf_cstr(&b), "kv_reuse=chunks") != NULL, "%s", ss_buf_cstr(&b));
    ck_assert_msg(strstr(ss_buf_cstr(&b), "kv_reuse: each document's KV from the engine's chunk cache") != NULL, "%s",
                  ss_buf_cstr(&b));
    ck_assert_msg(strstr(ss_buf_cstr(&b), "0.3 of its tokens recomputed") != NULL, "%s", ss_buf_cstr(&b));
    ss_buf_free(&b);
    done(p, c, db);
    p = plan_sql("CREATE VIEW a AS LLM_GENERATE(prompt = 'Tell me about {title}', context = STREAM(papers),\n"
                 "  data_source = STREAM(authors), kv_reuse = 'prefix');\n", &c, &db);
    ck_assert_int_eq(ss_explain(p, "a", &b), SS_OK);
    ck_assert_ptr_null(strstr(ss_buf_cstr(&b), "chunk cache"));
    ss_buf_free(&b);
    done(p, c, db);
}
END_TEST

/* ---- allocation failures ----
 * Outside sanitizer builds oom_hooks.h fails the N-th allocation of ss_plan_build and counts
 * live blocks: every failure point must give
 * SS_ERR_NOMEM and leak nothing. (The catalog is loaded before counting starts.) */
#include "oom_hooks.h"

#if SS_OOM_HOOKS
/* Builds the catalog's plan failing each allocation in turn; returns the number of failure points. */
static long oom_sweep(ss_catalog_t *c)
{
    char err[SS_ERRSZ];
    for (long n = 1;; n++) {
        ss_plan_t *p = NULL;
        oom_begin(n);
        int rc = ss_plan_build(c, &p, err, sizeof err);
        ss_plan_free(p);
        oom_end();
        ck_assert_msg(oom_live == 0, "failing allocation %ld leaks %ld blocks", n, oom_live);
        if (oom_nallocs < n) {
            ck_assert_msg(rc == SS_OK, "%s", err);
            return n - 1;
        }
        ck_assert_msg(rc == SS_ERR_NOMEM, "failing allocation %ld gave rc %d (%s)", n, rc, err);
        ck_assert_ptr_null(p);
    }
}
#endif

START_TEST(test_out_of_memory)
{
#if SS_OOM_HOOKS
    static const char *const examples[] = {"paper_digest", "chatbot", "relational"};
    long total = 0;
    for (size_t i = 0; i < SS_ARRAY_LEN(examples); i++) {
        char path[1024], err[SS_ERRSZ] = "";
        snprintf(path, sizeof path, "%s/examples/%s.sql", tu_source_dir(), examples[i]);
        char *sql = tu_read_file(path, NULL);
        ck_assert_ptr_nonnull(sql);
        sqlite3 *db;
        ss_catalog_t *c = mem_catalog(&db);
        ck_assert_msg(run_sql(c, sql, err, sizeof err) == SS_OK, "%s", err);
        total += oom_sweep(c);
        ss_catalog_close(c);
        sqlite3_close(db);
        free(sql);
    }
    /* the other lowering paths: GROUP BY expressions, joins with pushdown, SEM_JOIN, SEM_AGG + COUNT */
    sqlite3 *db;
    ss_catalog_t *c = mem_catalog(&db);
    char err[SS_ERRSZ] = "";
    ck_assert_msg(run_sql(c, base_sql, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(run_sql(c,
                          "CREATE VIEW a AS SELECT year / 10 AS d, COUNT(*) AS n, SEM_AGG('t {title}') AS s FROM papers\n"
                          "  GROUP BY d HAVING COUNT(*) > 1 ORDER BY n DESC LIMIT 3;\n"
                          "CREATE VIEW b AS SELECT p.title, a.name FROM papers p JOIN authors a ON a.paper_id = p.id\n"
                          "  AND a.name <> p.title WHERE p.year > 3 AND SEM_FILTER('{p.abstract} ok');\n"
                          "CREATE VIEW j AS SELECT DISTINCT p.id FROM papers p SEM_JOIN authors a ON '{p.title} {a.name}'\n"
                          "  WITH (join_candidates = 3) WHERE a.name LIKE 'x%' ORDER BY id LIMIT 2;\n"
                          "CREATE VIEW k AS SELECT id, SEM_MAP('m {title}') AS m FROM papers ORDER BY SEM_SCORE('s {title}') LIMIT 4;\n",
                          err, sizeof err) == SS_OK, "%s", err);
    total += oom_sweep(c);
    /* query structures: set operations, WITH, subqueries, outer/USING joins, windows */
    ck_assert_msg(run_sql(c,
                          "CREATE VIEW q1 AS WITH t (i, y) AS (SELECT id, year FROM papers), u AS (SELECT 1 FROM t)\n"
                          "  SELECT i FROM t UNION SELECT paper_id FROM authors EXCEPT ALL SELECT i FROM t ORDER BY 1 LIMIT 2 OFFSET 1;\n"
                          "CREATE VIEW q2 AS SELECT p.id, b.name, c.title FROM (SELECT id, year FROM papers) p FULL JOIN (SELECT paper_id AS id, name\n"
                          "  FROM authors) a USING (id) RIGHT JOIN authors b ON b.author_id = p.year, papers c WHERE c.id = b.paper_id;\n"
                          "CREATE VIEW q3 AS SELECT id, (SELECT COUNT(*) FROM authors a WHERE a.paper_id = p.id) AS n,\n"
                          "  year IN (SELECT paper_id FROM authors) AS hit FROM papers p WHERE id NOT IN (SELECT paper_id FROM\n"
                          "  authors a WHERE a.name = p.title) AND EXISTS (SELECT 1 FROM authors a WHERE a.paper_id > p.id)\n"
                          "  AND year > (SELECT MAX(year) FROM papers);\n"
                          "CREATE VIEW q4 AS SELECT * FROM (SELECT id, year, RANK() OVER (PARTITION BY year % 3 ORDER BY id) AS r,\n"
                          "  SUM(id) OVER () AS s FROM papers) q WHERE r <= 3;\n"
                          "CREATE VIEW q5 AS SELECT year, STRING_AGG(title, ',' ORDER BY id DESC) FILTER (WHERE id > 2) AS s,\n"
                          "  ARRAY_AGG(DISTINCT id) AS a, JSON_AGG(title) AS j, STDDEV(id) AS sd, BOOL_OR(id > 3) AS b\n"
                          "  FROM papers GROUP BY year;\n",
                          err, sizeof err) == SS_OK, "%s", err);
    total += oom_sweep(c);
    ss_catalog_close(c);
    sqlite3_close(db);
    ck_assert_int_gt(total, 100);
#else
    printf("test_out_of_memory: skipped under a sanitizer (allocation hooks off)\n");
#endif
}
END_TEST

Suite *check_planner_suite(void)
{
    Suite *s = suite_create("planner");
    TCase *tc = tcase_create("golden");
    tcase_add_test(tc, test_golden_paper_digest);
    tcase_add_test(tc, test_golden_chatbot);
    tcase_add_test(tc, test_golden_relational);
    tcase_add_test(tc, test_golden_support_triage);
    tcase_add_test(tc, test_golden_entity_resolution);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("plans");
    tcase_add_test(tp, test_types_ok);
    tcase_add_test(tp, test_sem_filter_split);
    tcase_add_test(tp, test_sem_join_topk_agg);
    tcase_add_test(tp, test_relational);
    tcase_add_test(tp, test_generate_and_query);
    tcase_add_test(tp, test_generate_kv_reuse_explain);
    tcase_add_test(tp, test_pushdown);
    tcase_add_test(tp, test_query_structure);
    tcase_add_test(tp, test_too_many_terms);
    tcase_add_test(tp, test_window_state);
    suite_add_tcase(s, tp);
    TCase *to = tcase_create("oom");
    tcase_add_test(to, test_out_of_memory);
    suite_add_tcase(s, to);
    TCase *te = tcase_create("errors");
    tcase_add_loop_test(te, test_errors, 0, (int)(sizeof err_cases / sizeof err_cases[0]));
    suite_add_tcase(s, te);
    return s;
}
