/*
 * check_it_models.c — models in the runtime (issue 11, item 4), as a user meets
 * them through the engine and the CLI:
 *  - CREATE MODEL loads a local model: a missing path or a bad file is the
 *    statement's error at the path option (line:col); a bad max_in_flight too;
 *  - re-running a script with CREATE ... IF NOT EXISTS works and says what exists
 *    (and whether this statement defines it differently); a dropped model can be
 *    created again;
 *  - max_in_flight bounds the requests in the model's server at once (the fixture
 *    server counts them);
 *  - a local model whose file is gone at start is reported: logged, and SHOW
 *    VIEWS shows the views that use it waiting on it; the other views and SELECTs
 *    on them go on; `run --until-idle` ends with the reason instead of waiting;
 *  - `run --until-idle --timeout-ms` ends in time when a model never answers.
 */
#include "ss_engine.h"
#include "testutil.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIN SS_BINARY_DIR "/semstream"
#define FIXTURE SS_BINARY_DIR "/bench_fixture_slow_server"

static ss_engine_t *engine_batch(const char *dir, int batch_size)
{
    char db[1024], err[SS_ERRSZ];
    snprintf(db, sizeof db, "%s/st.db", dir);
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.max_latency_ms = 20;
    o.batch_size = batch_size;
    o.catch_up = 1;
    ss_engine_t *e = NULL;
    ck_assert_msg(ss_engine_open(&o, &e, err, sizeof err) == SS_OK, "%s", err);
    return e;
}

static ss_engine_t *engine(const char *dir) { return engine_batch(dir, 0); }

/* Runs sql; returns its status; output in *out and the error in err. */
static int exec(ss_engine_t *e, const char *sql, char **out, char *err, size_t errsz)
{
    ss_buf_t b = SS_BUF_INIT;
    err[0] = 0;
    int rc = ss_engine_exec(e, sql, strlen(sql), "t", &b, err, errsz);
    if (out)
        *out = ss_buf_take(&b);
    else
        ss_buf_free(&b);
    return rc;
}

static char *ok(ss_engine_t *e, const char *sql)
{
    char err[SS_ERRSZ], *out = NULL;
    ck_assert_msg(exec(e, sql, &out, err, sizeof err) == SS_OK, "%s: %s", sql, err);
    return out;
}

static void fails_with(ss_engine_t *e, const char *sql, const char *want)
{
    char err[SS_ERRSZ];
    ck_assert_msg(exec(e, sql, NULL, err, sizeof err) != SS_OK, "%s succeeded", sql);
    ck_assert_msg(strstr(err, want), "%s:\n  got  %s\n  want %s", sql, err, want);
}

START_TEST(test_create_model_checks)
{
    char *dir = tu_tmpdir(), sql[2048], bad[1100], model[1024];
    ss_engine_t *e = engine(dir);
    fails_with(e, "CREATE MODEL m WITH (backend = 'local',\n  path = '/no/such/model.gguf');",
               "t:2:3: model m: loading model /no/such/model.gguf: cannot open model '/no/such/model.gguf': No such "
               "file or directory");
    snprintf(bad, sizeof bad, "%s/bad.gguf", dir);
    tu_write_file(bad, "GGUF but not really a model file");
    snprintf(sql, sizeof sql, "CREATE MODEL m WITH (backend = 'local', path = '%s');", bad);
    fails_with(e, sql, "t:1:41: model m: loading model");
    fails_with(e, "CREATE MODEL m WITH (backend = 'openai', url = 'http://127.0.0.1:9', max_in_flight = 0);",
               "t:1:70: model m: max_in_flight must be an integer from 1 to 100000, got '0'");
    fails_with(e, "CREATE MODEL m WITH (backend = 'openai', url = 'http://127.0.0.1:9', max_in_flight = 'lots');",
               "got 'lots'");
    /* every documented option of an OpenAI-compatible model is known; a misspelt one is named with a guess */
    free(ok(e, "CREATE MODEL o WITH (backend = 'openai', url = 'http://127.0.0.1:9', model = 'gpt', api = 'chat', "
               "organization = 'org-1', project = 'p', rpm = 600, tpm = 100000, top_logprobs = 5, max_retries = 2, "
               "prompt_batch = 4, embed_batch = 8, max_concurrency = 4, max_in_flight = 16, timeout_ms = 1000);"));
    free(ok(e, "DROP MODEL o;"));
    fails_with(e, "CREATE MODEL o WITH (backend = 'openai', url = 'http://127.0.0.1:9', rpn = 600);",
               "t:1:70: unknown option \"rpn\" for CREATE MODEL (did you mean \"rpm\"?)");
    fails_with(e, "CREATE MODEL o WITH (backend = 'openai', url = 'http://127.0.0.1:9', rpm = 'fast');",
               "model o: rpm must be an integer");
    char *out = ok(e, "SHOW MODELS;"); /* none of the failed ones is registered */
    ck_assert_msg(!strstr(out, "\n m "), "%s", out);
    free(out);
    /* a good one, a script run again, a definition that differs, DROP and CREATE again */
    snprintf(sql, sizeof sql,
             "CREATE MODEL IF NOT EXISTS m WITH (backend = 'local', path = '%s', max_in_flight = 4);\n"
             "CREATE STREAM IF NOT EXISTS s (id INT KEY, t TEXT);\n"
             "CREATE CONTINUOUS VIEW IF NOT EXISTS v AS SELECT id, SEM_MAP('{t}', model = 'm', max_tokens = 2) AS x "
             "FROM s;\n", tu_model_path("stories260K.gguf", model, sizeof model));
    free(ok(e, sql));
    out = ok(e, sql);
    ck_assert_msg(strstr(out, "NOTICE: model m already exists, skipping\nCREATE MODEL\n") &&
                      strstr(out, "NOTICE: stream s already exists, skipping\nCREATE STREAM\n") &&
                      strstr(out, "NOTICE: view v already exists, skipping\nCREATE VIEW\n"), "%s", out);
    free(out);
    ss_engine_close(e);
    e = engine(dir); /* and in a new process (the models registered at start) */
    out = ok(e, sql);
    ck_assert_msg(strstr(out, "NOTICE: model m already exists, skipping\n"), "%s", out);
    free(out);
    out = ok(e, "CREATE STREAM IF NOT EXISTS s (id INT KEY, t TEXT, extra INT);");
    ck_assert_msg(strstr(out, "NOTICE: stream s already exists, skipping (its definition differs from this statement: "
                              "DROP STREAM s first to change it)"), "%s", out);
    free(out);
    free(ok(e, "INSERT INTO s VALUES (1, 'once');"));
    out = ok(e, "SELECT COUNT(*) AS n FROM v;");
    ck_assert_msg(strstr(out, " 1\n"), "%s", out);
    free(out);
    free(ok(e, "DROP VIEW v;"));
    free(ok(e, "DROP MODEL m;"));
    snprintf(sql, sizeof sql, "CREATE MODEL m WITH (backend = 'local', path = '%s');", model);
    free(ok(e, sql));
    ss_engine_close(e);
    free(dir);
}
END_TEST

/* max_in_flight: the server never sees more requests at once than the model allows. */
START_TEST(test_max_in_flight)
{
    char url[128], sql[2048], stats[2048];
    for (int limited = 1; limited >= 0; limited--) {
        char *dir = tu_tmpdir();
        pid_t fx = tu_fixture_start(FIXTURE, 300, url, sizeof url);
        ss_engine_t *e = engine(dir);
        snprintf(sql, sizeof sql,
                 "CREATE MODEL slow WITH (backend = 'openai', url = '%s', model = 'fixture', max_concurrency = 16%s);\n"
                 "CREATE STREAM s (id INT KEY, t TEXT);\n"
                 "CREATE CONTINUOUS VIEW v AS SELECT id FROM s WHERE SEM_FILTER('Is {t} red?', model = 'slow');\n",
                 url, limited ? ", max_in_flight = 2" : "");
        free(ok(e, sql));
        ss_buf_t ins = SS_BUF_INIT;
        ss_buf_puts(&ins, "INSERT INTO s VALUES ");
        for (int i = 0; i < 24; i++)
            ss_buf_printf(&ins, "%s(%d, 'thing %d')", i ? ", " : "", i, i);
        ss_buf_puts(&ins, ";");
        free(ok(e, ss_buf_cstr(&ins)));
        ss_buf_free(&ins);
        char *out = ok(e, "SELECT COUNT(*) AS n FROM v;"); /* waits for every answer */
        free(out);
        snprintf(sql, sizeof sql, "curl -s %s/stats", url);
        char *st = NULL;
        ck_assert_int_eq(tu_sh(sql, &st), 0);
        snprintf(stats, sizeof stats, "%s", st);
        free(st);
        const char *mc = strstr(stats, "\"max_concurrent\":");
        ck_assert_msg(mc && strstr(stats, "\"prompts\":24"), "%s", stats);
        int max = atoi(mc + 17);
        if (limited)
            ck_assert_msg(max <= 2, "max_in_flight = 2, the server saw %d at once: %s", max, stats);
        else
            ck_assert_msg(max > 2, "without max_in_flight the server saw at most %d at once: %s", max, stats);
        ss_engine_close(e);
        tu_kill_wait(fx, SIGTERM);
        free(dir);
    }
}
END_TEST

/* One of the fixture's counters: "requests" (counted as they arrive, one prompt each here)
 * or "prompts" (counted as they are answered); -1 if it does not answer. */
static long fixture_stat(const char *url, const char *key)
{
    char cmd[256], k[64], *st = NULL;
    snprintf(cmd, sizeof cmd, "curl -s %s/stats", url);
    snprintf(k, sizeof k, "\"%s\":", key);
    long n = tu_sh(cmd, &st) == 0 && st && strstr(st, k) ? atol(strstr(st, k) + strlen(k)) : -1;
    free(st);
    return n;
}

/* Backpressure (issue 11 item 4): while a batch waits for its answers the pipeline reads
 * on, so later rows' requests go out too, but at most 10 x batch_size rows: the rest stays
 * in the log, unread, never dropped; a relational view beside it is not held up, and once
 * the answers come every row is asked exactly once. */
START_TEST(test_backpressure)
{
    char url[128], sql[2048];
    char *dir = tu_tmpdir();
    pid_t fx = tu_fixture_start(FIXTURE, 5000, url, sizeof url);
    /* at most 500 rows waiting on answers; the model and its client would take 1,000 at once */
    ss_engine_t *e = engine_batch(dir, 50);
    snprintf(sql, sizeof sql,
             "CREATE MODEL slow WITH (backend = 'openai', url = '%s', model = 'fixture', max_concurrency = 1000, "
             "max_in_flight = 1000);\n"
             "CREATE STREAM s (id INT KEY, t TEXT);\n"
             "CREATE CONTINUOUS VIEW v AS SELECT id FROM s WHERE SEM_FILTER('Is {t} red?', model = 'slow');\n"
             "CREATE CONTINUOUS VIEW r AS SELECT COUNT(*) AS n FROM s;\n", url);
    free(ok(e, sql));
    ss_buf_t ins = SS_BUF_INIT;
    ss_buf_puts(&ins, "INSERT INTO s VALUES ");
    for (int i = 0; i < 1200; i++)
        ss_buf_printf(&ins, "%s(%d, 'thing %d')", i ? ", " : "", i, i);
    ss_buf_puts(&ins, ";");
    int64_t t0 = ss_now_ns();
    free(ok(e, ss_buf_cstr(&ins)));
    ss_buf_free(&ins);
    char *out = ok(e, "SELECT n FROM r;"); /* the relational view does not wait for the model */
    ck_assert_msg(strstr(out, " 1200\n"), "%s", out);
    free(out);
    /* the first answers come 5 s after the first requests: until then, read-ahead but bounded */
    long asked = 0;
    while (ss_now_ns() - t0 < 3000000000LL) {
        asked = fixture_stat(url, "requests");
        ck_assert_msg(asked <= 500, "%ld requests out with batch_size 50: more than 10 batches read ahead", asked);
        struct timespec ts = {0, 200000000L};
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(asked > 50, "only %ld requests out after 3 s: the pipeline did not read on while waiting", asked);
    /* the answers come: every row gets through, each asked once */
    out = ok(e, "SELECT COUNT(*) AS n FROM v;");
    free(out);
    ss_engine_stats_t st;
    ss_engine_get_stats(e, &st);
    ck_assert_int_eq(st.lag, 0);
    ck_assert_int_eq(fixture_stat(url, "requests"), 1200);
    ck_assert_int_eq(fixture_stat(url, "prompts"), 1200);
    ss_engine_close(e);
    tu_kill_wait(fx, SIGTERM);
    free(dir);
}
END_TEST

/* A local model's file is gone at start: logged, shown, and only its views wait. */
START_TEST(test_model_missing_at_start)
{
    char *dir = tu_tmpdir(), cmd[8192], model[1024];
    snprintf(cmd, sizeof cmd,
             "cd %s && cp %s mm.gguf && printf \"%s\" > v.sql && %s run v.sql --db st.db --until-idle --quiet && "
             "rm mm.gguf && printf \"INSERT INTO s VALUES (1, 'a');\\nSELECT n FROM r;\\nSHOW VIEWS;\\n\" | "
             "%s shell --db st.db; echo \"shell exit=$?\"; %s run v.sql --db st.db --until-idle --quiet; "
             "echo \"run exit=$?\"",
             dir, tu_model_path("stories260K.gguf", model, sizeof model),
             "CREATE MODEL IF NOT EXISTS mm WITH (backend = 'local', path = 'mm.gguf');\\n"
             "CREATE STREAM IF NOT EXISTS s (id INT KEY, t TEXT);\\n"
             "CREATE CONTINUOUS VIEW IF NOT EXISTS v AS SELECT id, SEM_MAP('say {t}', model = 'mm', max_tokens = 2) "
             "AS x FROM s;\\n"
             "CREATE CONTINUOUS VIEW IF NOT EXISTS r AS SELECT COUNT(*) AS n FROM s;\\n",
             BIN, BIN, BIN);
    char *out = NULL;
    tu_sh(cmd, &out);
    /* logged at start */
    ck_assert_msg(strstr(out, "semstream[error] engine: cannot load model mm: cannot open model 'mm.gguf'"), "%s", out);
    /* the relational view answers; SHOW VIEWS says what v waits for */
    ck_assert_msg(strstr(out, " n\n---\n 1\n(1 row)"), "%s", out);
    ck_assert_msg(strstr(out, "waiting on model mm: failing since") && strstr(out, "No such file or directory"), "%s",
                  out);
    ck_assert_msg(strstr(out, "shell exit=0"), "%s", out);
    /* run --until-idle ends with the reason */
    ck_assert_msg(strstr(out, "run exit=1") && strstr(out, "views v: waiting on model mm, which fails: loading model "
                                                          "mm.gguf"), "%s", out);
    free(out);
    free(dir);
}
END_TEST

/* --timeout-ms ends a run whose model never answers. */
START_TEST(test_timeout_ms)
{
    char *dir = tu_tmpdir(), url[128], cmd[4096];
    pid_t fx = tu_fixture_start(FIXTURE, 120000, url, sizeof url);
    snprintf(cmd, sizeof cmd,
             "cd %s && printf \"CREATE MODEL slow WITH (backend = 'openai', url = '%s', model = 'fixture');\\n"
             "CREATE STREAM s (id INT KEY, t TEXT);\\nCREATE CONTINUOUS VIEW v AS SELECT id FROM s WHERE "
             "SEM_FILTER('Is {t} blue?', model = 'slow');\\nINSERT INTO s VALUES (1, 'sky');\\n\" > t.sql && "
             "%s run t.sql --db st.db --until-idle --timeout-ms 2000 --quiet",
             dir, url, BIN);
    int64_t t0 = ss_now_ns();
    char *out = NULL;
    ck_assert_int_eq(tu_sh(cmd, &out), 1);
    double secs = (ss_now_ns() - t0) / 1e9;
    ck_assert_msg(secs < 8, "--timeout-ms 2000 ended after %.1f s", secs);
    ck_assert_msg((strstr(out, "timed out (--timeout-ms)") || strstr(out, "not caught up in time")) &&
                      strstr(out, "1 messages of input not yet applied (1 LLM requests in flight)"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s run /dev/null --until-idle --timeout-ms -5", BIN);
    ck_assert_int_eq(tu_sh(cmd, &out), 2);
    ck_assert_msg(strstr(out, "--timeout-ms expects a positive integer, got '-5'"), "%s", out);
    free(out);
    tu_kill_wait(fx, SIGTERM);
    free(dir);
}
END_TEST

Suite *check_it_models_suite(void)
{
    Suite *s = suite_create("it_models");
    TCase *tc = tcase_create("models");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_create_model_checks);
    tcase_add_test(tc, test_max_in_flight);
    tcase_add_test(tc, test_backpressure);
    tcase_add_test(tc, test_model_missing_at_start);
    tcase_add_test(tc, test_timeout_ms);
    suite_add_tcase(s, tc);
    return s;
}
