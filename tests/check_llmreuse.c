/*
 * check_llmreuse.c — LLM_GENERATE REUSE = 'semantic' (operators/llm_reuse.c, issue 17 §4).
 * The model: the posterior fit of an entry's observations, the exploration probability against
 * delta (monotone in s and delta; the error rate of a simulated stream stays within delta), the
 * deterministic draw, answer agreement. The operator, on the real stories260K model and the wink
 * word vectors: a miss makes an entry, an identical turn reuses it without a model call, a
 * paraphrase explores it and records an observation, a confident entry is reused; a reused answer
 * follows its source when a document both retrieved changes and is decided afresh when the
 * source is deleted; the emitted deltas always integrate to the operator's snapshot; bad options.
 */
#include "semops_harness.h"
#include "ss_embed.h"
#include "ss_sem.h"

#include <math.h>

/* ------------------------------------------------------------ the model */

static void obs_line(float *obs, int n, double lo, double hi, double t)
{
    for (int i = 0; i < n; i++) { /* s spread over [lo, hi], ok iff s >= t */
        double s = lo + (hi - lo) * i / (n - 1);
        obs[2 * i] = (float)s;
        obs[2 * i + 1] = s >= t ? 1.0f : 0.0f;
    }
}

START_TEST(test_fit_few)
{
    float obs[10];
    obs_line(obs, 5, 0.5, 1.0, 0.0);
    ss_reuse_fit_t f;
    ss_reuse_fit(obs, 5, 6, &f);
    ck_assert_int_eq(f.ok, 0);
    ck_assert(ss_reuse_explore_p(&f, 0.99, 0.05) == 1.0);
    ss_reuse_fit(obs, 5, 5, &f);
    ck_assert_int_eq(f.ok, 1);
}
END_TEST

START_TEST(test_fit_separated)
{
    float obs[80];
    obs_line(obs, 40, 0.3, 1.0, 0.7);
    ss_reuse_fit_t f;
    ss_reuse_fit(obs, 40, 6, &f);
    ck_assert(f.ok);
    ck_assert_msg(f.t_map >= 0.64 && f.t_map <= 0.72, "t_map %g", f.t_map);
    ck_assert(f.t_mean >= 0.6 && f.t_mean <= 0.75);
    ck_assert(f.var_t > 0 && f.var_t < 0.01);
    double q10 = ss_reuse_t_quantile(&f, 0.1), q90 = ss_reuse_t_quantile(&f, 0.9);
    ck_assert(q10 <= f.t_mean && f.t_mean <= q90);
    /* well above the threshold: mostly reuse; below it: explore with probability ~ 1 - delta */
    double hi = ss_reuse_explore_p(&f, 0.98, 0.05), lo = ss_reuse_explore_p(&f, 0.5, 0.05);
    ck_assert_msg(hi < 0.2, "tau(0.98) %g", hi);
    ck_assert_msg(lo > 0.9, "tau(0.5) %g", lo);
    double prev = 1.0;
    for (double s = 0.3; s <= 1.0; s += 0.05) { /* non-increasing in s */
        double t = ss_reuse_explore_p(&f, s, 0.05);
        ck_assert_msg(t <= prev + 1e-12, "tau(%g) %g > %g", s, t, prev);
        prev = t;
    }
    for (double s = 0.7; s <= 1.0; s += 0.1) /* a tighter bound explores more */
        ck_assert(ss_reuse_explore_p(&f, s, 0.01) >= ss_reuse_explore_p(&f, s, 0.1));
}
END_TEST

START_TEST(test_fit_all_wrong)
{
    float obs[40];
    obs_line(obs, 20, 0.8, 1.0, 2.0); /* every exploration disagreed, even at s ~ 1 */
    ss_reuse_fit_t f;
    ss_reuse_fit(obs, 20, 6, &f);
    ck_assert(f.t_map >= 0.95);
    ck_assert_msg(ss_reuse_explore_p(&f, 0.99, 0.05) > 0.9, "%g", ss_reuse_explore_p(&f, 0.99, 0.05));
}
END_TEST

START_TEST(test_uniform)
{
    double sum = 0;
    char turn[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(turn, sizeof turn, "question %d", i);
        double u = ss_reuse_uniform(turn, 7, i % 5);
        ck_assert(u >= 0 && u < 1);
        ck_assert(u == ss_reuse_uniform(turn, 7, i % 5));
        sum += u;
    }
    ck_assert_msg(fabs(sum / 2000 - 0.5) < 0.03, "mean %g", sum / 2000);
    ck_assert(ss_reuse_uniform("a", 1, 0) != ss_reuse_uniform("a", 1, 1));
    ck_assert(ss_reuse_uniform("a", 1, 0) != ss_reuse_uniform("a", 2, 0));
}
END_TEST

START_TEST(test_same_text)
{
    ck_assert(ss_reuse_same_text("The dog ran.", "  the   DOG ran. "));
    ck_assert(ss_reuse_same_text("", " \n"));
    ck_assert(!ss_reuse_same_text("The dog ran.", "The dog ran"));
    ck_assert(!ss_reuse_same_text("a b", "ab"));
}
END_TEST

/* A stream against a known truth P(ok | s) = L(s; 0.75, 25), s ~ U(0.4, 1), one entry learning
 * online as the operator does: wrong reuses stay within delta of all requests (with slack for
 * a sample of 400), and it does reuse. */
START_TEST(test_error_bound)
{
    const double delta = 0.05;
    float obs[2 * SS_REUSE_MAX_OBS];
    int nobs = 0, wrong = 0, hits = 0, n = 400;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double s = 0.4 + 0.6 * (double)(x >> 11) / 9007199254740992.0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int ok = (double)(x >> 11) / 9007199254740992.0 < ss_reuse_sigmoid(s, 0.75, 25);
        ss_reuse_fit_t f;
        ss_reuse_fit(obs, nobs, SS_REUSE_MIN_OBS, &f);
        char turn[32];
        snprintf(turn, sizeof turn, "q%d", i);
        if (ss_reuse_uniform(turn, 1, nobs) < ss_reuse_explore_p(&f, s, delta)) {
            if (nobs == SS_REUSE_MAX_OBS) {
                memmove(obs, obs + 2, sizeof(float) * 2 * (SS_REUSE_MAX_OBS - 1));
                nobs--;
            }
            obs[2 * nobs] = (float)s;
            obs[2 * nobs + 1] = (float)ok;
            nobs++;
        } else {
            hits++;
            wrong += !ok;
        }
    }
    ck_assert_msg(hits > n / 10, "hits %d of %d", hits, n);
    ck_assert_msg((double)wrong / n <= 1.5 * delta, "wrong reuses %d of %d (delta %g)", wrong, n, delta);
}
END_TEST

/* ------------------------------------------------------------ the operator */

#define CTX_SPEC "id:i:key,q:t"
#define DOC_SPEC "did:i:key,body:t"
#define NODE 6

static ss_plan_node_t *reuse_node(ss_plan_node_t *c, ss_plan_node_t *d, const char *min_obs)
{
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_LLM_GENERATE);
    n->id = NODE;
    n->nin = 2;
    n->in[0] = c;
    n->in[1] = d;
    n->tmpl = h_tmpl("Answer the question {q}", c->schema, NULL);
    n->schema = fx_schema("id:i,response:t,docs:t");
    fx_opt(n, "retrieve", "1");
    fx_opt(n, "max_tokens", "8");
    fx_opt(n, "reuse", "semantic");
    fx_opt(n, "reuse_min_obs", min_obs);
    return n;
}

static ss_embedder_t *open_wink(void)
{
    char path[4096], err[SS_ERRSZ] = "";
    snprintf(path, sizeof path, "%s/data/wink100.vec", tu_source_dir());
    ss_embed_opts_t o = {.kind = "wink", .vec_path = path};
    ss_embedder_t *e = NULL;
    ck_assert_msg(ss_embedder_open(&o, &e, err, sizeof err) == SS_OK, "%s", err);
    return e;
}

static int64_t q1(sqlite3 *db, const char *fmt, int64_t a)
{
    char sql[256];
    snprintf(sql, sizeof sql, fmt, a);
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *resp_of(sqlite3 *db, int64_t id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT r, resp FROM st_%d_ctx WHERE w > 0", NODE);
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    while (!out && sqlite3_step(st) == SQLITE_ROW) {
        ss_row_t *r = NULL;
        ck_assert_int_eq(ss_row_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), &r), SS_OK);
        if (r->v[0].u.i == id)
            out = strdup((const char *)sqlite3_column_text(st, 1));
        ss_row_free(r);
    }
    sqlite3_finalize(st);
    ck_assert_msg(out != NULL, "no answer for turn %lld", (long long)id);
    return out;
}

static void add_turn(ss_zset_t *z, int64_t id, const char *q, int64_t w)
{
    ss_zset_add(z, h_row(2, 'i', id, 't', q), w);
}

static void check_snapshot(harness_t *h, ss_op_t *op, ss_zset_t *acc)
{
    ss_zset_t snap;
    ss_zset_init(&snap);
    char err[SS_ERRSZ];
    ck_assert_int_eq(op->vt->snapshot(op, &h->ctx, &snap, err, sizeof err), SS_OK);
    ss_zset_consolidate(&snap);
    ss_zset_consolidate(acc);
    ck_assert(ss_zset_equal(acc, &snap));
    ss_zset_destroy(&snap);
}

/* seq of turn id */
static int64_t seq_of(sqlite3 *db, int64_t id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT seq, r FROM st_%d_ctx WHERE w > 0", NODE);
    sqlite3_stmt *st = NULL;
    int64_t seq = -1;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    while (seq < 0 && sqlite3_step(st) == SQLITE_ROW) {
        ss_row_t *r = NULL;
        ck_assert_int_eq(ss_row_decode(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), &r), SS_OK);
        if (r->v[0].u.i == id)
            seq = sqlite3_column_int64(st, 0);
        ss_row_free(r);
    }
    sqlite3_finalize(st);
    return seq;
}

/* Miss, identical reuse, exploration, confident reuse; then a document change (the reused
 * answer follows its source) and the source's deletion (decided afresh). */
START_TEST(test_operator)
{
    ss_plan_node_t *c = h_source(1, CTX_SPEC), *d = h_source(2, DOC_SPEC);
    ss_plan_node_t *n = reuse_node(c, d, "6");
    harness_t h;
    h_open(&h);
    h.ctx.emb = open_wink();
    ss_op_t *op = h_op(&h, n);
    sqlite3 *db = h.ctx.db;
    ss_zset_t acc, z;
    ss_zset_init(&acc);
    ss_zset_init(&z);
    ss_zset_add(&z, h_row(2, 'i', (int64_t)1, 't', "The dog ran in the park with a red ball."), 1);
    h_apply(&h, op, 1, &z, &acc);
    ss_zset_clear(&z);
    /* 1: a miss, generated, an entry */
    add_turn(&z, 1, "Where did the dog play with the ball?", 1);
    ck_assert_int_eq(h_apply(&h, op, 0, &z, &acc), 1);
    int64_t s1 = seq_of(db, 1);
    ck_assert_int_eq(q1(db, "SELECT entry FROM st_6_ctx WHERE seq = %lld", s1), 1);
    /* 2: the same question again: reused without a model call */
    ss_zset_clear(&z);
    add_turn(&z, 2, "Where did the dog play with the ball?", 1);
    ck_assert_int_eq(h_apply(&h, op, 0, &z, &acc), 0);
    int64_t s2 = seq_of(db, 2);
    ck_assert_int_eq(q1(db, "SELECT src FROM st_6_ctx WHERE seq = %lld", s2), s1);
    ck_assert_int_eq(q1(db, "SELECT entry FROM st_6_ctx WHERE seq = %lld", s2), 0);
    char *a1 = resp_of(db, 1), *a2 = resp_of(db, 2);
    ck_assert_str_eq(a1, a2);
    /* 3: a paraphrase: the entry has no observations yet, so it explores (one call) and learns */
    ss_zset_clear(&z);
    add_turn(&z, 3, "Where did the dog play with its ball?", 1);
    ck_assert_int_eq(h_apply(&h, op, 0, &z, &acc), 1);
    ck_assert_int_eq(q1(db, "SELECT length(obs) FROM st_6_ctx WHERE seq = %lld", s1), 2 * (int64_t)sizeof(float));
    ss_reuse_stats_t st;
    ck_assert_int_eq(ss_reuse_stats(db, NODE, &st), SS_OK);
    ck_assert(st.misses == 1 && st.identical == 1 && st.explorations == 1 && st.hits == 0);
    ck_assert(st.agreed + st.disagreed == 1);
    int64_t s3 = seq_of(db, 3);
    ck_assert_int_eq(q1(db, "SELECT entry FROM st_6_ctx WHERE seq = %lld", s3), st.disagreed == 1);
    /* 4: give the entry a confident record (agreement down to s = 0.8, disagreement below 0.6):
     * a close paraphrase is now reused */
    float obs[2 * 60];
    obs_line(obs, 60, 0.3, 1.0, 0.7);
    sqlite3_stmt *up = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "UPDATE st_6_ctx SET obs = ?2 WHERE seq = ?1", -1, &up, NULL), SQLITE_OK);
    sqlite3_bind_int64(up, 1, s1);
    sqlite3_bind_blob(up, 2, obs, (int)sizeof obs, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(up), SQLITE_DONE);
    sqlite3_finalize(up);
    ss_zset_clear(&z);
    add_turn(&z, 4, "Where did the dog play with the red ball?", 1);
    ck_assert_int_eq(h_apply(&h, op, 0, &z, &acc), 0);
    int64_t s4 = seq_of(db, 4);
    ck_assert_int_eq(q1(db, "SELECT src FROM st_6_ctx WHERE seq = %lld", s4), s1);
    char *a4 = resp_of(db, 4);
    ck_assert_str_eq(a4, a1);
    ck_assert_int_eq(ss_reuse_stats(db, NODE, &st), SS_OK);
    ck_assert_msg(st.hits == 1 && st.est_err_sum >= 0 && st.est_err_sum < 0.2, "hits %g est_err %g", st.hits, st.est_err_sum);
    check_snapshot(&h, op, &acc);
    /* 5: the document changes: the entry regenerates (one call), 2 and 4 follow it */
    ss_zset_clear(&z);
    ss_zset_add(&z, h_row(2, 'i', (int64_t)1, 't', "The dog ran in the park with a red ball."), -1);
    ss_zset_add(&z, h_row(2, 'i', (int64_t)1, 't', "The cat slept in the garden under a tree."), 1);
    int64_t calls = h_apply(&h, op, 1, &z, &acc);
    ck_assert_int_ge(calls, 1); /* 1 regenerates; 3 regenerates (an entry) or is decided against 1 */
    ck_assert_int_le(calls, 2);
    char *b1 = resp_of(db, 1), *b2 = resp_of(db, 2), *b4 = resp_of(db, 4);
    ck_assert_str_eq(b2, b1);
    ck_assert_str_eq(b4, b1);
    ck_assert_int_eq(q1(db, "SELECT src FROM st_6_ctx WHERE seq = %lld", s4), s1);
    ck_assert_int_eq(ss_reuse_stats(db, NODE, &st), SS_OK);
    ck_assert(st.followed == 2);
    ck_assert_int_eq(q1(db, "SELECT count(*) FROM st_6_ret WHERE seq = %lld", s4), 1);
    check_snapshot(&h, op, &acc);
    /* 6: the source is deleted: 2 and 4 are decided afresh (no entry with the observations to be
     * reused is left: at least one call) */
    ss_zset_clear(&z);
    add_turn(&z, 1, "Where did the dog play with the ball?", -1);
    calls = h_apply(&h, op, 0, &z, &acc);
    ck_assert_int_ge(calls, 1);
    ck_assert_int_eq(q1(db, "SELECT count(*) FROM st_6_ctx WHERE src = %lld", s1), 0);
    free(resp_of(db, 2));
    free(resp_of(db, 4));
    check_snapshot(&h, op, &acc);
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_llm_generate_describe(db, n, 2, &b), SS_OK);
    ck_assert_msg(strstr(ss_buf_cstr(&b), "semantic reuse (node 6): delta 0.05;") != NULL, "%s", ss_buf_cstr(&b));
    ss_buf_free(&b);
    free(a1), free(a2), free(a4), free(b1), free(b2), free(b4);
    ss_zset_destroy(&acc);
    ss_zset_destroy(&z);
    ss_op_destroy(op);
    ss_embedder_destroy(h.ctx.emb);
    h_close(&h);
    ss_plan_node_free(n);
    ss_plan_node_free(c);
    ss_plan_node_free(d);
}
END_TEST

static void refuse(const char *name, const char *value, const char *maintain, const char *want)
{
    ss_plan_node_t *c = h_source(1, CTX_SPEC), *d = h_source(2, DOC_SPEC);
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_LLM_GENERATE);
    n->id = NODE;
    n->nin = 2;
    n->in[0] = c;
    n->in[1] = d;
    n->schema = fx_schema("id:i,response:t,docs:t");
    fx_opt(n, name, value);
    if (strcmp(name, "reuse"))
        fx_opt(n, "reuse", "semantic");
    if (maintain)
        fx_opt(n, "maintain", maintain);
    ss_op_t *op = NULL;
    char err[SS_ERRSZ] = "";
    ck_assert_int_eq(ss_op_new(n, &op, err, sizeof err), SS_ERR_SEMANTIC);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    ss_plan_node_free(n);
    ss_plan_node_free(c);
    ss_plan_node_free(d);
}

START_TEST(test_refusals)
{
    refuse("reuse", "exact", NULL, "REUSE must be 'semantic' or 'none', not 'exact'");
    refuse("reuse", "semantic", "dependency", "REUSE = 'semantic' needs MAINTAIN = 'recompute' or 'none'");
    refuse("reuse", "semantic", "append", "needs MAINTAIN");
    refuse("reuse_delta", "0", NULL, "reuse_delta must be in (0, 1), not 0");
    refuse("reuse_delta", "1.5", NULL, "reuse_delta must be in (0, 1)");
}
END_TEST

Suite *check_llmreuse_suite(void)
{
    (void)h_dump, (void)h_concat, (void)fx_memo_rows; /* the harness's, for other suites */
    Suite *s = suite_create("llmreuse");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, test_fit_few);
    tcase_add_test(tc, test_fit_separated);
    tcase_add_test(tc, test_fit_all_wrong);
    tcase_add_test(tc, test_uniform);
    tcase_add_test(tc, test_same_text);
    tcase_add_test(tc, test_error_bound);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    TCase *op = tcase_create("operator");
    tcase_add_test(op, test_operator);
    tcase_add_test(op, test_refusals);
    tcase_set_timeout(op, 120);
    suite_add_tcase(s, op);
    return s;
}
