/*
 * llm_reuse.c — LLM_GENERATE REUSE = 'semantic' (issue 17 §4): a new turn whose embedding is close
 * to an already answered turn over the same data (the same prompt before the turn) may take that
 * answer instead of generating, with a similarity threshold learned per cache entry that bounds the
 * error rate at a user-set delta, as vCache does (Schroeder et al., "vCache: Verified Semantic
 * Prompt Caching", 2025).
 *
 * The model (pure functions): each entry keeps the observations (s, ok) of the turns that explored
 * it: s = the cosine of the turn and the entry's turn, ok = whether the answer generated for the
 * turn agreed with the entry's. P(ok | s) is a sigmoid L(s; t, gamma) = 1 / (1 + exp(-gamma (s - t))).
 * vCache fits it by logistic regression and bounds t by a normal approximation (a tabulated
 * variance when the observations are perfectly separated); here the posterior over a grid of (t,
 * gamma) under a uniform prior gives t's quantiles directly, separated or not. For a new turn at
 * similarity s the probability of exploring (generating anyway and recording an observation) is
 *   tau(s) = min over eps of  1 - delta / (1 - (1 - eps) L(s; t'(eps), gamma_map)),  clipped to [0,1],
 * with t'(eps) the (1 - eps) posterior quantile of t: any eps gives a lower bound (1 - eps) L on
 * P(ok) that holds with probability 1 - eps, and exploiting with probability 1 - tau keeps the
 * probability of a wrong reuse at most delta. Fewer than min_obs observations: always explore.
 * Unlike vCache, a turn whose point estimate L(s; t_map, gamma) is below 1/2 always explores: the
 * formula alone would still reuse such an answer with probability up to delta (tau = 1 - delta
 * at L = 0), spending the error budget on answers believed wrong (measured: with word vectors
 * every such reuse was wrong).
 * The draw u that decides is a hash of the turn, the entry and its observation count, so a replay
 * of the same data decides the same.
 *
 * The operator side (llm_generate.c calls these): the decision for one turn (ss_reuse_plan: follow
 * its source, reuse, explore, generate or wait for an entry being revisited), what is recorded
 * once its answer is stored (ss_reuse_record), the reuse columns of st_<id>_ctx (src: the answer
 * reused; entry: 1 for a cache entry; ctxh: hash of the prompt before the turn; obs: an entry's
 * observations) and the counters in st_<id>_reusestat, which EXPLAIN VIEW shows.
 */
#include "ss_sem.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NT 201  /* t grid: 0, 0.005, ..., 1 */
#define NG 13   /* gamma grid: 4 * 2^(j/2), 4 .. 256 */
#define NEPS 50 /* eps grid of the tau bound */
#define U_SEED 0x72657573 /* "reus" */

static double grid_t(int i) { return (double)i / (NT - 1); }
static double grid_g(int j) { return 4.0 * pow(2.0, j / 2.0); }

/* log L(z) and log(1 - L(z)) = log L(-z), stably. */
static double log_sig(double z) { return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z)); }

double ss_reuse_sigmoid(double s, double t, double gamma) { return 1.0 / (1.0 + exp(-gamma * (s - t))); }

void ss_reuse_fit(const float *obs, int n, int min_obs, ss_reuse_fit_t *f)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    f->ok = n >= min_obs && n > 0;
    if (!f->ok)
        return;
    double lp[NT][NG]; /* log posterior, up to a constant (21 KB) */
    double best = -INFINITY;
    int bi = 0, bj = 0;
    for (int i = 0; i < NT; i++)
        for (int j = 0; j < NG; j++) {
            double t = grid_t(i), g = grid_g(j), l = 0;
            for (int k = 0; k < n; k++) {
                double s = SS_MAX(0.0, SS_MIN(1.0, (double)obs[2 * k])), z = g * (s - t);
                l += obs[2 * k + 1] > 0.5f ? log_sig(z) : log_sig(-z);
            }
            lp[i][j] = l;
            if (l > best) {
                best = l;
                bi = i;
                bj = j;
            }
        }
    double sum = 0, mean = 0, sq = 0;
    for (int i = 0; i < NT; i++) {
        double m = 0;
        for (int j = 0; j < NG; j++)
            m += exp(lp[i][j] - best);
        f->cdf[i] = m; /* marginal of t, normalised below */
        sum += m;
        mean += m * grid_t(i);
        sq += m * grid_t(i) * grid_t(i);
    }
    double acc = 0;
    for (int i = 0; i < NT; i++) {
        acc += f->cdf[i] / sum;
        f->cdf[i] = acc;
    }
    f->t_map = grid_t(bi);
    f->gamma = grid_g(bj);
    f->t_mean = mean / sum;
    f->var_t = SS_MAX(0.0, sq / sum - f->t_mean * f->t_mean);
}

double ss_reuse_t_quantile(const ss_reuse_fit_t *f, double p)
{
    for (int i = 0; i < NT; i++)
        if (f->cdf[i] >= p - 1e-12)
            return grid_t(i);
    return 1.0;
}

double ss_reuse_explore_p(const ss_reuse_fit_t *f, double s, double delta)
{
    if (!f->ok || ss_reuse_sigmoid(s, f->t_map, f->gamma) < 0.5)
        return 1.0; /* not believed right: never spend the error budget on it */
    double tau = 1.0;
    for (int e = 0; e < NEPS; e++) {
        double eps = 1e-6 + (1.0 - 2e-6) * e / (NEPS - 1);
        double tp = ss_reuse_t_quantile(f, 1.0 - eps);
        double alpha = (1.0 - eps) * ss_reuse_sigmoid(s, tp, f->gamma);
        double x = alpha >= 1.0 ? -INFINITY : 1.0 - delta / (1.0 - alpha);
        tau = SS_MIN(tau, x);
    }
    return SS_MAX(0.0, SS_MIN(1.0, tau));
}

double ss_reuse_uniform(const char *turn, int64_t entry, int nobs)
{
    uint64_t h = ss_hash64(turn, strlen(turn), U_SEED ^ (uint64_t)entry * 0x9e3779b97f4a7c15ull ^ (uint64_t)nobs);
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* Lower-cased, whitespace runs as one space, no leading or trailing space. */
static void norm_text(const char *s, ss_buf_t *out)
{
    int sp = 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) {
            sp = out->len > 0;
            continue;
        }
        if (sp)
            ss_buf_putc(out, ' ');
        sp = 0;
        ss_buf_putc(out, (char)tolower((unsigned char)*s));
    }
}

int ss_reuse_same_text(const char *a, const char *b)
{
    ss_buf_t x = SS_BUF_INIT, y = SS_BUF_INIT;
    norm_text(a ? a : "", &x);
    norm_text(b ? b : "", &y);
    int same = !strcmp(ss_buf_cstr(&x), ss_buf_cstr(&y));
    ss_buf_free(&x);
    ss_buf_free(&y);
    return same;
}

/* ------------------------------------------------------------------ operator state */

int ss_reuse_init(sqlite3 *db, int id, char *err, size_t errsz)
{
    static const char *const cols[] = {"src INTEGER", "entry INTEGER", "ctxh INTEGER", "obs BLOB"};
    for (size_t i = 0; i < SS_ARRAY_LEN(cols); i++) { /* tables of before lack them */
        char *sql = ss_sprintf("ALTER TABLE st_%d_ctx ADD COLUMN %s", id, cols[i]);
        if (!sql)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        sqlite3_exec(db, sql, NULL, NULL, NULL); /* fails harmlessly when present */
        free(sql);
    }
    return ss_sem_exec(db, err, errsz,
                       "CREATE TABLE IF NOT EXISTS st_%d_reusestat(k TEXT PRIMARY KEY, v REAL);"
                       "CREATE INDEX IF NOT EXISTS st_%d_ctx_ctxh ON st_%d_ctx(ctxh) WHERE entry = 1",
                       id, id, id);
}

int ss_reuse_count(sqlite3 *db, int id, const char *what, double v, char *err, size_t errsz)
{
    return ss_sem_exec(db, err, errsz,
                       "INSERT INTO st_%d_reusestat(k, v) VALUES('%s', %.17g) ON CONFLICT(k) DO UPDATE SET v = v + %.17g",
                       id, what, v, v);
}

void ss_reuse_cand_free(ss_reuse_cand_t *c)
{
    free(c->resp);
    free(c->turn);
    free(c->obs);
    memset(c, 0, sizeof *c);
}

int ss_reuse_nearest(sqlite3 *db, int id, uint64_t ctxh, int64_t self, const float *q, int dim,
                     ss_reuse_cand_t *out, char *err, size_t errsz)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(db, &st, err, errsz,
                            "SELECT seq, e, resp, turn, obs FROM st_%d_ctx WHERE entry = 1 AND ctxh = ?1 AND "
                            "seq <> ?2 AND w > 0 AND resp IS NOT NULL AND e IS NOT NULL ORDER BY seq", id);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, (int64_t)ctxh);
    sqlite3_bind_int64(st, 2, self);
    double best = -2;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 1) != (int)(sizeof(float) * (size_t)dim))
            continue; /* embedded by another embedder: not comparable */
        double s = ss_sem_cos(q, sqlite3_column_blob(st, 1), dim);
        if (s <= best)
            continue;
        best = s;
        ss_reuse_cand_free(out);
        out->seq = sqlite3_column_int64(st, 0);
        out->sim = s;
        out->resp = ss_strdup((const char *)sqlite3_column_text(st, 2));
        out->turn = ss_strdup((const char *)sqlite3_column_text(st, 3));
        out->nobs = sqlite3_column_bytes(st, 4) / (int)(2 * sizeof(float));
        if (out->nobs > 0 && (out->obs = malloc((size_t)out->nobs * 2 * sizeof(float))))
            memcpy(out->obs, sqlite3_column_blob(st, 4), (size_t)out->nobs * 2 * sizeof(float));
        if (!out->resp || !out->turn || (out->nobs > 0 && !out->obs))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    sqlite3_finalize(st);
    return rc;
}

int ss_reuse_observe(sqlite3 *db, int id, int64_t entry, double s, int ok, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(db, &st, err, errsz, "SELECT obs FROM st_%d_ctx WHERE seq = ?1", id);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, entry);
    ss_buf_t b = SS_BUF_INIT;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) > 0)
        rc = ss_buf_append(&b, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    sqlite3_finalize(st);
    size_t rec = 2 * sizeof(float), max = (size_t)SS_REUSE_MAX_OBS * rec;
    float o[2] = {(float)s, ok ? 1.0f : 0.0f};
    if (!rc)
        rc = ss_buf_append(&b, o, sizeof o);
    const char *p = b.data;
    size_t len = b.len;
    if (len > max) { /* the oldest observations go first */
        p += len - max;
        len = max;
    }
    if (!rc)
        rc = ss_sem_prepare(db, &st, err, errsz, "UPDATE st_%d_ctx SET obs = ?2 WHERE seq = ?1", id);
    if (!rc) {
        sqlite3_bind_int64(st, 1, entry);
        sqlite3_bind_blob(st, 2, p, (int)len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(db, err, errsz, "llm_generate reuse observation");
        sqlite3_finalize(st);
    }
    ss_buf_free(&b);
    return rc;
}

/* ------------------------------------------------------------------ decisions */

void ss_reuse_job_free(ss_reuse_job_t *j)
{
    free(j->turn);
    free(j->q);
    ss_reuse_cand_free(&j->cand);
    memset(j, 0, sizeof *j);
}

static int pending(const int64_t *seqs, int n, int64_t seq)
{
    for (int i = 0; i < n; i++)
        if (seqs[i] == seq)
            return 1;
    return 0;
}

int ss_reuse_entries_pending(sqlite3 *db, int id, const int64_t *seqs, int n, int *any, char *err, size_t errsz)
{
    *any = 0;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(db, &st, err, errsz, "SELECT 1 FROM st_%d_ctx WHERE seq=?1 AND entry=1 AND w>0", id);
    for (int i = 0; i < n && !rc && !*any; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, seqs[i]);
        *any = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return rc;
}

/* A revisited turn that reused another: it follows its source while the source is a live entry
 * over the same data (SS_REUSE_REUSE), waits while the source is pending (SS_REUSE_DEFER); *done =
 * 0 when the source no longer serves and the turn is decided afresh. */
static int follow(sqlite3 *db, int id, const int64_t *pend, int npend, ss_reuse_job_t *j, int nodefer, int *done,
                  char *err, size_t errsz)
{
    *done = 0;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(db, &st, err, errsz,
                            "SELECT resp, turn, ctxh FROM st_%d_ctx WHERE seq=?1 AND w>0 AND entry=1 AND resp IS NOT "
                            "NULL", id);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, j->old_src);
    int waits = pending(pend, npend, j->old_src) && !nodefer;
    if (sqlite3_step(st) == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 2) == j->ctxh) {
        *done = 1;
        if (waits) {
            j->act = SS_REUSE_DEFER;
        } else {
            j->act = SS_REUSE_REUSE;
            j->cand.seq = j->old_src;
            j->cand.resp = ss_strdup((const char *)sqlite3_column_text(st, 0));
            j->cand.turn = ss_strdup((const char *)sqlite3_column_text(st, 1));
            if (!j->cand.resp || !j->cand.turn)
                rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            if (!rc)
                rc = ss_reuse_count(db, id, "followed", 1, err, errsz);
        }
    } else if (waits) {
        *done = 1; /* the source is being revisited: see what it becomes */
        j->act = SS_REUSE_DEFER;
    }
    sqlite3_finalize(st);
    return rc;
}

int ss_reuse_plan(ss_op_t *op, ss_op_ctx_t *ctx, const ss_reuse_opts_t *o, const int64_t *pend, int npend,
                  ss_reuse_job_t *j, int nodefer, int wait, char *err, size_t errsz)
{
    int id = op->node->id, done = 0, rc = SS_OK;
    ss_reuse_cand_free(&j->cand);
    j->act = SS_REUSE_GENERATE;
    if (j->was_entry || !j->q || !j->turn)
        return SS_OK;
    if (j->old_src > 0 && ((rc = follow(ctx->db, id, pend, npend, j, nodefer, &done, err, errsz)) || done))
        return rc;
    if (wait && !nodefer) {
        j->act = SS_REUSE_DEFER;
        return SS_OK;
    }
    rc = ss_reuse_nearest(ctx->db, id, j->ctxh, j->seq, j->q, j->dim, &j->cand, err, errsz);
    if (rc || !j->cand.seq)
        return rc ? rc : ss_reuse_count(ctx->db, id, "miss", 1, err, errsz);
    if (pending(pend, npend, j->cand.seq) && !nodefer) {
        j->act = SS_REUSE_DEFER;
        return SS_OK;
    }
    if (!strcmp(j->turn, j->cand.turn)) { /* the same turn over the same data: the same prompt */
        j->act = SS_REUSE_REUSE;
        return ss_reuse_count(ctx->db, id, "identical", 1, err, errsz);
    }
    ss_reuse_fit_t f;
    ss_reuse_fit(j->cand.obs, j->cand.nobs, o->min_obs, &f);
    double tau = ss_reuse_explore_p(&f, j->cand.sim, o->delta);
    if (ss_reuse_uniform(j->turn, j->cand.seq, j->cand.nobs) < tau) {
        j->act = SS_REUSE_EXPLORE;
        return ss_reuse_count(ctx->db, id, "explore", 1, err, errsz);
    }
    j->act = SS_REUSE_REUSE;
    rc = ss_reuse_count(ctx->db, id, "hit", 1, err, errsz);
    if (!rc)
        rc = ss_reuse_count(ctx->db, id, "est_err", 1.0 - ss_reuse_sigmoid(j->cand.sim, f.t_map, f.gamma), err,
                            errsz);
    return rc;
}

/* reuse_label: whether the turn's row and the entry's hold equal, non-NULL labels. */
static int label_agree(sqlite3 *db, int id, int col, const ss_reuse_job_t *j, int *agree, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(db, &st, err, errsz, "SELECT r FROM st_%d_ctx WHERE seq=?1", id);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, j->cand.seq);
    ss_row_t *a = NULL, *b = NULL;
    *agree = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        rc = ss_row_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), &a);
    sqlite3_finalize(st);
    if (!rc && a)
        rc = ss_row_decode(j->r, j->rlen, &b);
    if (!rc && a && b && col < a->n && col < b->n)
        *agree = a->v[col].t != SS_NULL && ss_val_cmp(&a->v[col], &b->v[col]) == 0;
    ss_row_free(a);
    ss_row_free(b);
    return rc;
}

/* Whether an explored answer a agrees with the entry's b: by the labels (reuse_label), else as
 * texts, or with equiv <= 1 by the cosine of their embeddings. */
static int agree_with(ss_op_t *op, ss_op_ctx_t *ctx, const ss_reuse_opts_t *o, const ss_reuse_job_t *j,
                      const char *a, const char *b, int *agree, char *err, size_t errsz)
{
    if (o->label >= 0)
        return label_agree(ctx->db, op->node->id, o->label, j, agree, err, errsz);
    *agree = ss_reuse_same_text(a, b);
    if (*agree || o->equiv > 1)
        return SS_OK;
    const char *texts[2] = {a, b};
    float **e = NULL;
    int dim = 0;
    int rc = ss_sem_embed(op, ctx, texts, 2, &e, &dim, err, errsz);
    if (!rc)
        *agree = ss_sem_cos(e[0], e[1], dim) >= o->equiv;
    for (int i = 0; e && i < 2; i++)
        free(e[i]);
    free(e);
    return rc;
}

int ss_reuse_record(ss_op_t *op, ss_op_ctx_t *ctx, const ss_reuse_opts_t *o, const ss_reuse_job_t *j,
                    const char *resp, char *err, size_t errsz)
{
    int id = op->node->id, rc = SS_OK, entry = 1;
    int64_t src = 0;
    if (j->act == SS_REUSE_REUSE) {
        entry = 0;
        src = j->cand.seq;
    } else if (j->act == SS_REUSE_EXPLORE) {
        int agree = 0;
        rc = agree_with(op, ctx, o, j, resp, j->cand.resp, &agree, err, errsz);
        if (!rc)
            rc = ss_reuse_observe(ctx->db, id, j->cand.seq, j->cand.sim, agree, err, errsz);
        if (!rc)
            rc = ss_reuse_count(ctx->db, id, agree ? "agree" : "disagree", 1, err, errsz);
        entry = !agree; /* an answer the entry already gives adds no entry (vCache) */
    } else if (!j->q) {
        entry = 0; /* not embedded: nothing can find it */
    }
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "UPDATE st_%d_ctx SET src=?2, entry=?3, ctxh=?4 WHERE seq=?1",
                            id);
    if (!rc) {
        sqlite3_bind_int64(st, 1, j->seq);
        if (src)
            sqlite3_bind_int64(st, 2, src);
        sqlite3_bind_int(st, 3, entry);
        sqlite3_bind_int64(st, 4, (int64_t)j->ctxh);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "llm_generate reuse");
        sqlite3_finalize(st);
    }
    return rc;
}

/* ------------------------------------------------------------------ EXPLAIN */

static const char *const STAT_NAMES[] = {"hit", "identical", "followed", "miss", "explore", "agree", "disagree",
                                         "est_err"};

int ss_reuse_stats(sqlite3 *db, int id, ss_reuse_stats_t *s)
{
    memset(s, 0, sizeof *s);
    double *v[] = {&s->hits, &s->identical, &s->followed, &s->misses, &s->explorations, &s->agreed,
                   &s->disagreed, &s->est_err_sum};
    char sql[128];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof sql, "SELECT k, v FROM st_%d_reusestat", id);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return SS_ERR_NOTFOUND;
    while (sqlite3_step(st) == SQLITE_ROW)
        for (size_t i = 0; i < SS_ARRAY_LEN(STAT_NAMES); i++)
            if (!strcmp((const char *)sqlite3_column_text(st, 0), STAT_NAMES[i]))
                *v[i] = sqlite3_column_double(st, 1);
    sqlite3_finalize(st);
    snprintf(sql, sizeof sql, "SELECT count(*), sum(length(obs)) FROM st_%d_ctx WHERE entry = 1 AND w > 0", id);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        s->entries = sqlite3_column_int64(st, 0);
        s->observations = sqlite3_column_int64(st, 1) / (int64_t)(2 * sizeof(float));
    }
    sqlite3_finalize(st);
    return SS_OK;
}

void ss_reuse_describe(sqlite3 *db, const ss_plan_node_t *n, ss_buf_t *out)
{
    ss_reuse_stats_t s;
    if (ss_reuse_stats(db, n->id, &s))
        return;
    double reused = s.hits + s.identical;
    ss_buf_printf(out,
                  "semantic reuse (node %d): delta %g; %.0f reused (%.0f identical turns), %.0f followed a changed "
                  "source, %.0f misses, %.0f explorations (%.0f agreed, %.0f did not); estimated error of the "
                  "reuses %.4f, observed disagreement of the explorations %.4f; %lld entries, %lld observations\n",
                  n->id, ss_plan_opt_real(n, "reuse_delta", SS_REUSE_DELTA), reused, s.identical, s.followed, s.misses,
                  s.explorations, s.agreed, s.disagreed, reused > 0 ? s.est_err_sum / reused : 0.0,
                  s.explorations > 0 ? s.disagreed / s.explorations : 0.0, (long long)s.entries,
                  (long long)s.observations);
}
