/*
 * check_statestore.c — unit tests of the engine's state store (offsets, per-view
 * sequences, the sink outbox, the node registry and its table drops,
 * transactions) and of the SQL statement splitter the front ends use.
 */
#include "ss_engine.h"
#include "ss_store.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ss_store_t *open_store(char **dir)
{
    *dir = tu_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/s.db", *dir);
    ss_store_t *s = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_store_open(path, &s, err, sizeof err) == SS_OK, "%s", err);
    return s;
}

START_TEST(test_offsets_and_txn)
{
    char *dir, err[SS_ERRSZ];
    ss_store_t *s = open_store(&dir);
    ss_offset_t o[2] = {{0, 10}, {3, 7}}, *got = NULL;
    int n = -1;
    ck_assert_int_eq(ss_store_get_offsets(s, "a", &got, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 0);
    free(got);
    /* a rolled-back batch leaves nothing behind */
    ck_assert_int_eq(ss_store_begin(s, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_begin(s, err, sizeof err), SS_ERR_INTERNAL);
    ck_assert_int_eq(ss_store_put_offsets(s, "a", o, 2, err, sizeof err), SS_OK);
    ss_store_rollback(s);
    ck_assert_int_eq(ss_store_get_offsets(s, "a", &got, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 0);
    free(got);
    /* a committed one stays */
    ck_assert_int_eq(ss_store_begin(s, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_put_offsets(s, "a", o, 2, err, sizeof err), SS_OK);
    o[0].offset = 11;
    ck_assert_int_eq(ss_store_put_offsets(s, "a", o, 1, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_commit(s, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_get_offsets(s, "a", &got, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(got[0].partition, 0);
    ck_assert_int_eq(got[0].offset, 11);
    ck_assert_int_eq(got[1].partition, 3);
    ck_assert_int_eq(got[1].offset, 7);
    free(got);
    ck_assert_int_eq(ss_store_clear_offsets(s, "a", err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_get_offsets(s, "a", &got, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 0);
    free(got);
    ss_store_close(s);
    free(dir);
}
END_TEST

typedef struct seen {
    int n;
    char view[4][16];
    int64_t seq[4];
    size_t len[4];
} seen_t;

static int collect(void *arg, const char *view, int64_t seq_start, const void *delta, size_t len, char *err,
                   size_t errsz)
{
    (void)delta;
    (void)err;
    (void)errsz;
    seen_t *s = arg;
    if (s->n < 4) {
        snprintf(s->view[s->n], 16, "%s", view);
        s->seq[s->n] = seq_start;
        s->len[s->n] = len;
    }
    s->n++;
    return SS_OK;
}

START_TEST(test_seq_and_outbox)
{
    char *dir, err[SS_ERRSZ];
    ss_store_t *s = open_store(&dir);
    int64_t seq = 0, n = -1;
    ck_assert_int_eq(ss_store_get_seq(s, "v", &seq, err, sizeof err), SS_OK);
    ck_assert_int_eq(seq, 1); /* never published */
    ck_assert_int_eq(ss_store_put_seq(s, "v", 42, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_get_seq(s, "v", &seq, err, sizeof err), SS_OK);
    ck_assert_int_eq(seq, 42);
    ck_assert_int_eq(ss_store_outbox_add(s, "v", 42, "abc", 3, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_outbox_add(s, "w", 1, "", 0, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_outbox_add(s, "v", 45, "de", 2, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_outbox_count(s, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 3);
    seen_t seen;
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(ss_store_outbox_each(s, NULL, collect, &seen, err, sizeof err), SS_OK);
    ck_assert_int_eq(seen.n, 3); /* in the order added */
    ck_assert_str_eq(seen.view[0], "v");
    ck_assert_int_eq(seen.seq[0], 42);
    ck_assert_uint_eq(seen.len[0], 3);
    ck_assert_str_eq(seen.view[1], "w");
    ck_assert_uint_eq(seen.len[1], 0);
    ck_assert_int_eq(seen.seq[2], 45);
    /* one view's entries (a pipeline re-publishes and clears only its own views) */
    seen_t sv;
    memset(&sv, 0, sizeof sv);
    ck_assert_int_eq(ss_store_outbox_each(s, "v", collect, &sv, err, sizeof err), SS_OK);
    ck_assert_int_eq(sv.n, 2);
    ck_assert_int_eq(sv.seq[0], 42);
    ck_assert_int_eq(sv.seq[1], 45);
    ck_assert_int_eq(ss_store_outbox_clear(s, "v", err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_outbox_count(s, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ss_store_outbox_clear(s, NULL, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_outbox_count(s, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 0);
    ss_store_close(s);
    free(dir);
}
END_TEST

static int table_exists(ss_store_t *s, const char *name)
{
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(ss_store_db(s), "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", -1, &st,
                       NULL);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

START_TEST(test_node_registry)
{
    char *dir, err[SS_ERRSZ];
    ss_store_t *s = open_store(&dir);
    ck_assert_int_eq(ss_store_exec(s, "CREATE TABLE st_1_rows(x); CREATE TABLE st_12_g(x); CREATE TABLE st_1_m(x);"
                                      "CREATE TABLE view_v(x); CREATE TABLE \"view_we\"\"ird\"(x);",
                                   err, sizeof err),
                     SS_OK);
    ck_assert_int_eq(ss_store_node_put(s, 1, "source", "events", NULL, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_store_node_put(s, 12, "view", "v", "v", err, sizeof err), SS_OK);
    char *kind, *label, *view;
    ck_assert_int_eq(ss_store_node_get(s, 12, &kind, &label, &view, err, sizeof err), SS_OK);
    ck_assert_str_eq(kind, "view");
    ck_assert_str_eq(label, "v");
    ck_assert_str_eq(view, "v");
    free(kind);
    free(label);
    free(view);
    ck_assert_int_eq(ss_store_node_get(s, 99, &kind, &label, &view, err, sizeof err), SS_ERR_NOTFOUND);
    int *ids, n;
    ck_assert_int_eq(ss_store_node_ids(s, &ids, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[1], 12);
    free(ids);
    /* dropping node 1 drops st_1_* only, not st_12_* */
    ck_assert_int_eq(ss_store_node_drop(s, 1, NULL, err, sizeof err), SS_OK);
    ck_assert(!table_exists(s, "st_1_rows"));
    ck_assert(!table_exists(s, "st_1_m"));
    ck_assert(table_exists(s, "st_12_g"));
    ck_assert_int_eq(ss_store_node_drop(s, 12, "v", err, sizeof err), SS_OK);
    ck_assert(!table_exists(s, "st_12_g"));
    ck_assert(!table_exists(s, "view_v"));
    ck_assert_int_eq(ss_store_node_drop(s, 13, "we\"ird", err, sizeof err), SS_OK);
    ck_assert(!table_exists(s, "view_we\"ird"));
    ck_assert_int_eq(ss_store_node_ids(s, &ids, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 0);
    free(ids);
    ss_store_close(s);
    free(dir);
}
END_TEST

/* ---- statement splitting ---- */

START_TEST(test_split)
{
    static const struct {
        const char *in;
        size_t end; /* ss_sql_stmt_end */
        int blank;
    } cases[] = {
        {"SELECT 1; SELECT 2;", 9, 0},
        {"SELECT ';' FROM t; x", 18, 0},
        {"SELECT 'it''s;' ;", 17, 0},
        {"SELECT \"a;b\" FROM t;", 20, 0},
        {"-- a; comment\nSELECT 1;", 23, 0},
        {"/* ; */ SELECT 1;", 17, 0},
        {"SELECT 1", 0, 0},
        {"SELECT 'unterminated;", 0, 0},
        {"  -- only a comment\n /* and ; this */ \n", 0, 1},
        {"", 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].in);
        ck_assert_msg(ss_sql_stmt_end(cases[i].in, n) == cases[i].end, "[%s]: end %zu, want %zu", cases[i].in,
                      ss_sql_stmt_end(cases[i].in, n), cases[i].end);
        ck_assert_msg(ss_sql_blank(cases[i].in, n) == cases[i].blank, "[%s]: blank", cases[i].in);
    }
}
END_TEST

Suite *check_statestore_suite(void)
{
    Suite *s = suite_create("statestore");
    TCase *tc = tcase_create("store");
    tcase_add_test(tc, test_offsets_and_txn);
    tcase_add_test(tc, test_seq_and_outbox);
    tcase_add_test(tc, test_node_registry);
    tcase_add_test(tc, test_split);
    suite_add_tcase(s, tc);
    return s;
}
