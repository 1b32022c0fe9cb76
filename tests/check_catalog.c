/*
 * check_catalog.c — tests of the catalog: entries persist in SQLite and come
 * back (re-parsed) after close/reopen with the same plan and node ids; node ids
 * stay stable when views are added or dropped; DROP refuses while dependants
 * exist and names them; IF [NOT] EXISTS; settings; tab-completion names.
 */
#include "ss_catalog.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
        default: rc = ss_seterr(err, errsz, SS_ERR_INVALID, "unexpected statement"); break;
        }
    }
    ss_ast_script_free(s);
    return rc;
}

#define OK(c, sql)                                                           \
    do {                                                                     \
        char e_[SS_ERRSZ] = "";                                              \
        ck_assert_msg(run_sql((c), (sql), e_, sizeof e_) == SS_OK, "%s", e_); \
    } while (0)

static const char *setup_sql =
    "CREATE STREAM papers (id INT KEY, title TEXT, abstract TEXT, year INT) WITH (topic = 'p_in', ttl = '7d');\n"
    "CREATE MODEL small WITH (backend = 'local', path = '/models/stories260K.gguf');\n"
    "CREATE VIEW recent WITH (sink_topic = 'recent_out') AS SELECT id, title, abstract FROM papers WHERE year > 2019;\n"
    "CREATE VIEW db AS SELECT id, SEM_MAP('tl;dr {abstract}', model = small) AS tldr FROM recent\n"
    "  WHERE SEM_FILTER('{title} is about databases');\n";

static char *explain(ss_catalog_t *c)
{
    ss_plan_t *p = NULL;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_plan_build(c, &p, err, sizeof err) == SS_OK, "%s", err);
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_explain(p, NULL, &b), SS_OK);
    ss_plan_free(p);
    return ss_buf_take(&b);
}

static ss_catalog_t *open_cat(sqlite3 *db)
{
    ss_catalog_t *c = NULL;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_catalog_open(db, &c, err, sizeof err) == SS_OK, "%s", err);
    return c;
}

START_TEST(test_persist_reopen)
{
    char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/cat.db", dir);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ss_catalog_t *c = open_cat(db);
    OK(c, setup_sql);
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_catalog_set(c, "Batch_Size", "64", err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_catalog_set(c, "batch_size", "32", err, sizeof err), SS_OK);
    char *before = explain(c);
    ss_catalog_close(c);
    sqlite3_close(db);

    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    c = open_cat(db);
    ck_assert_int_eq(ss_catalog_nstreams(c), 1);
    ck_assert_int_eq(ss_catalog_nviews(c), 2);
    ck_assert_int_eq(ss_catalog_nmodels(c), 1);
    const ss_cat_stream_t *s = ss_catalog_stream(c, "PAPERS");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s->topic, "p_in");
    ck_assert_str_eq(s->format, "json");
    ck_assert_int_eq(s->schema->n, 4);
    ck_assert_int_eq(s->schema->is_key[0], 1);
    ck_assert_ptr_nonnull(strstr(s->sql, "CREATE STREAM papers"));
    const ss_cat_view_t *v = ss_catalog_view_at(c, 0);
    ck_assert_str_eq(v->name, "recent");
    ck_assert_str_eq(v->sink_topic, "recent_out");
    ck_assert_ptr_nonnull(v->stmt);
    ck_assert_int_gt(v->created_ms, 0);
    ck_assert_str_eq(ss_catalog_view_at(c, 1)->name, "db");
    const ss_cat_model_t *m = ss_catalog_model(c, "small");
    ck_assert_str_eq(m->backend, "local");
    ck_assert_str_eq(ss_catalog_get(c, "BATCH_SIZE"), "32");
    ck_assert_ptr_null(ss_catalog_get(c, "nope"));
    char *after = explain(c);
    ck_assert_str_eq(before, after); /* same DAG, same node ids */
    free(before);
    free(after);
    ss_catalog_close(c);
    sqlite3_close(db);
    unlink(path);
    rmdir(dir);
    free(dir);
}
END_TEST

/* Id of the first node of `kind` planned for `view`. */
static int node_id(ss_catalog_t *c, const char *view, ss_plan_kind_t kind)
{
    ss_plan_t *p = NULL;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_plan_build(c, &p, err, sizeof err) == SS_OK, "%s", err);
    int id = -1;
    for (int i = 0; i < p->n && id < 0; i++)
        if (p->nodes[i]->kind == kind && !strcmp(p->nodes[i]->view, view))
            id = p->nodes[i]->id;
    ss_plan_free(p);
    return id;
}

START_TEST(test_ids_stable)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    ss_catalog_t *c = open_cat(db);
    OK(c, setup_sql);
    int f = node_id(c, "db", SS_PN_SEM_FILTER), m = node_id(c, "db", SS_PN_SEM_MAP);
    ck_assert_int_eq(f / 1000, 2); /* view db is the second view: ids 2001.. */
    ck_assert_int_eq(m, f + 1);
    /* a new stream and views (one created before db's in nothing) leave db's ids alone */
    OK(c, "CREATE STREAM other (k TEXT KEY, v INT);\n"
          "CREATE VIEW o AS SELECT k, v * 2 AS w FROM other;\n");
    ck_assert_int_eq(node_id(c, "db", SS_PN_SEM_FILTER), f);
    ck_assert_int_eq(node_id(c, "o", SS_PN_SOURCE), 3001); /* each view reads through sources of its own */
    /* dropping and re-creating a view gives it fresh ids (no stale state tables) */
    OK(c, "DROP VIEW db;");
    OK(c, "CREATE VIEW db AS SELECT id, SEM_MAP('tl;dr {abstract}', model = small) AS tldr FROM recent\n"
          "  WHERE SEM_FILTER('{title} is about databases');");
    ck_assert_int_eq(node_id(c, "db", SS_PN_SEM_FILTER) / 1000, 4);
    ck_assert_int_eq(node_id(c, "recent", SS_PN_FILTER) / 1000, 1);
    ss_catalog_close(c);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_drop_dependants)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    ss_catalog_t *c = open_cat(db);
    OK(c, setup_sql);
    OK(c, "CREATE VIEW also AS SELECT title FROM papers;");
    char err[SS_ERRSZ] = "";
    ck_assert_int_eq(ss_catalog_drop(c, SS_OBJ_STREAM, "papers", 0, err, sizeof err), SS_ERR_INVALID);
    ck_assert_str_eq(err, "cannot drop stream papers: views recent, also read it (drop them first)");
    ck_assert_int_eq(ss_catalog_drop(c, SS_OBJ_VIEW, "recent", 0, err, sizeof err), SS_ERR_INVALID);
    ck_assert_str_eq(err, "cannot drop view recent: view db reads it (drop it first)");
    ck_assert_int_eq(ss_catalog_drop(c, SS_OBJ_MODEL, "small", 0, err, sizeof err), SS_ERR_INVALID);
    ck_assert_str_eq(err, "cannot drop model small: view db reads it (drop it first)");
    OK(c, "CREATE MODEL other WITH (backend = 'openai', url = 'http://localhost:1/v1');\n"
          "CREATE VIEW uses_other WITH (model = other) AS SELECT id FROM papers WHERE SEM_FILTER('{title}?');");
    ck_assert_int_eq(ss_catalog_drop(c, SS_OBJ_MODEL, "other", 0, err, sizeof err), SS_ERR_INVALID);
    ck_assert_str_eq(err, "cannot drop model other: view uses_other reads it (drop it first)");
    OK(c, "DROP VIEW uses_other; DROP MODEL other;");
    ck_assert_int_eq(ss_catalog_drop(c, SS_OBJ_VIEW, "nope", 0, err, sizeof err), SS_ERR_NOTFOUND);
    ck_assert_str_eq(err, "no view named nope");
    ck_assert_int_eq(ss_catalog_drop(c, SS_OBJ_VIEW, "nope", 1, err, sizeof err), SS_OK);
    OK(c, "DROP VIEW db; DROP VIEW recent; DROP VIEW also; DROP MODEL small; DROP STREAM papers;");
    ck_assert_int_eq(ss_catalog_nstreams(c), 0);
    ck_assert_int_eq(ss_catalog_nviews(c), 0);
    ck_assert_int_eq(ss_catalog_nmodels(c), 0);
    ss_catalog_close(c);
    /* the drops persisted */
    c = open_cat(db);
    ck_assert_int_eq(ss_catalog_nstreams(c) + ss_catalog_nviews(c) + ss_catalog_nmodels(c), 0);
    ss_catalog_close(c);
    sqlite3_close(db);
}
END_TEST


/* SET default_model applies at CREATE VIEW: a view that asks a model and names none records it
 * (the stored statement gets WITH (model = ...), so its plan keeps it after a later SET, a
 * reopen, and DROP MODEL sees the view); a relational view or one naming its model does not. */
START_TEST(test_default_model_recorded)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    ss_catalog_t *c = open_cat(db);
    char err[SS_ERRSZ] = "";
    OK(c, "CREATE STREAM papers (id INT KEY, title TEXT) WITH (topic = 'p_in');\n"
          "CREATE MODEL small WITH (backend = 'local', path = '/models/stories260K.gguf');\n"
          "CREATE MODEL big WITH (backend = 'openai', url = 'http://localhost:1/v1');");
    OK(c, "CREATE VIEW before AS SELECT id FROM papers WHERE SEM_FILTER('{title}?');");
    ck_assert_int_eq(ss_catalog_set(c, "default_model", "small", err, sizeof err), SS_OK);
    OK(c, "CREATE VIEW a AS SELECT id, SEM_MAP('tl;dr {title}') AS t FROM papers;\n"
          "CREATE VIEW b WITH (model = big) AS SELECT id FROM papers WHERE SEM_FILTER('{title}?');\n"
          "CREATE VIEW rel AS SELECT id FROM papers WHERE id > 3;");
    ck_assert_int_eq(ss_catalog_set(c, "default_model", "big", err, sizeof err), SS_OK);
    for (int round = 0; round < 2; round++) {
        char *x = explain(c);
        ck_assert_msg(strstr(x, "sem_map") && strstr(x, "model=small"), "%s", x);
        const char *vb = strstr(x, "view b "), *vbefore = strstr(x, "view before ");
        ck_assert_ptr_nonnull(vb);
        ck_assert_ptr_nonnull(vbefore);
        ck_assert_ptr_nonnull(strstr(vb, "model=big"));
        const ss_cat_view_t *v = ss_catalog_view(c, "a");
        ck_assert_ptr_nonnull(strstr(v->sql, "model = 'small'"));
        ck_assert_ptr_null(strstr(ss_catalog_view(c, "rel")->sql, "model"));
        ck_assert_ptr_null(strstr(ss_catalog_view(c, "before")->sql, "model")); /* created before the SET */
        free(x);
        ss_catalog_close(c); /* the recorded model persists */
        c = open_cat(db);
    }
    ck_assert_int_eq(ss_catalog_drop(c, SS_OBJ_MODEL, "small", 0, err, sizeof err), SS_ERR_INVALID);
    ck_assert_str_eq(err, "cannot drop model small: view a reads it (drop it first)");
    ck_assert_int_eq(ss_catalog_set(c, "default_model", "nosuch", err, sizeof err), SS_OK);
    ck_assert_int_ne(run_sql(c, "CREATE VIEW z AS SELECT id FROM papers WHERE SEM_FILTER('{title}?');", err,
                             sizeof err), SS_OK);
    ck_assert_str_eq(err, "1:13: view z would use default_model \"nosuch\", which is not a model (CREATE MODEL nosuch "
                          "WITH (...), or SET default_model to another)");
    ss_catalog_close(c);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_if_not_exists_and_names)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    ss_catalog_t *c = open_cat(db);
    OK(c, setup_sql);
    OK(c, "CREATE STREAM IF NOT EXISTS papers (x INT);");
    OK(c, "CREATE VIEW IF NOT EXISTS recent AS SELECT nothing FROM nowhere;");
    ck_assert_int_eq(ss_catalog_stream(c, "papers")->schema->n, 4);
    char err[SS_ERRSZ] = "";
    ck_assert_int_eq(run_sql(c, "CREATE STREAM recent (x INT);", err, sizeof err), SS_ERR_EXISTS);
    ck_assert_str_eq(err, "1:15: view recent already exists");
    const char **names = ss_catalog_names(c);
    ck_assert_ptr_nonnull(names);
    int n = 0, saw_abstract = 0, saw_db = 0, saw_small = 0, saw_tldr = 0;
    for (; names[n]; n++) {
        saw_abstract |= !strcmp(names[n], "abstract");
        saw_db |= !strcmp(names[n], "db");
        saw_small |= !strcmp(names[n], "small");
        saw_tldr |= !strcmp(names[n], "tldr"); /* a view's output column */
    }
    ck_assert(saw_abstract && saw_db && saw_small && saw_tldr);
    ck_assert_int_eq(n, 1 + 2 + 1 + 4 + 1);
    free(names);
    /* view columns come back after a reopen too */
    ss_catalog_close(c);
    c = open_cat(db);
    names = ss_catalog_names(c);
    for (n = 0; names[n]; n++)
        ;
    ck_assert_int_eq(n, 1 + 2 + 1 + 4 + 1);
    free(names);
    ss_catalog_close(c);
    sqlite3_close(db);
}
END_TEST

Suite *check_catalog_suite(void)
{
    Suite *s = suite_create("catalog");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_persist_reopen);
    tcase_add_test(tc, test_ids_stable);
    tcase_add_test(tc, test_drop_dependants);
    tcase_add_test(tc, test_if_not_exists_and_names);
    tcase_add_test(tc, test_default_model_recorded);
    suite_add_tcase(s, tc);
    return s;
}
