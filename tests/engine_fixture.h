/*
 * engine_fixture.h — an engine in the test's process for the end-to-end suites of the
 * engine (check_it_semops.c, check_it_cascade.c, check_it_time.c, check_it_winsem.c): opened
 * on dir/state.db with stories260K, one inference thread and catch-up on (a statement sees what
 * was written before it), statements that must succeed, and the comparison of two SELECTs'
 * output. Static inline: a suite uses the helpers it needs.
 */
#ifndef SS_ENGINE_FIXTURE_H
#define SS_ENGINE_FIXTURE_H

#include "ss_engine.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NULL (after printing why) when this build's engine cannot open: the test skips. */
static inline ss_engine_t *open_engine(const char *dir)
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
    if (rc == SS_ERR_UNSUPPORTED) {
        fprintf(stderr, "skipped: %s\n", err);
        return NULL;
    }
    ck_assert_msg(rc == SS_OK, "engine open: %s", err);
    return e;
}

/* Runs sql, which must succeed; its output (malloc'd). */
static inline char *run(ss_engine_t *e, const char *sql)
{
    ss_buf_t out = SS_BUF_INIT;
    char err[SS_ERRSZ] = "";
    int rc = ss_engine_exec(e, sql, strlen(sql), "test", &out, err, sizeof err);
    ck_assert_msg(rc == SS_OK, "%s: %s", sql, err);
    return ss_buf_take(&out);
}

static inline void exec(ss_engine_t *e, const char *sql) { free(run(e, sql)); }

/* The output of two SELECTs must be equal. */
/* open_engine that must succeed: the suites that have no skip path. */
static inline ss_engine_t *open_engine_ok(const char *dir)
{
    ss_engine_t *e = open_engine(dir);
    ck_assert_msg(e != NULL, "engine open: not supported by this build");
    return e;
}

static inline void same(ss_engine_t *e, const char *a, const char *b)
{
    char *x = run(e, a), *y = run(e, b);
    if (strcmp(x, y))
        fprintf(stderr, "%s\n%s\n%s\n%s\n", a, x, b, y);
    ck_assert_str_eq(x, y);
    free(x);
    free(y);
}

#endif
