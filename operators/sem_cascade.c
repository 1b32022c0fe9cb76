/*
 * sem_cascade.c — the incremental state of a model cascade (ss_cascade.h), kept in the
 * operator's SQLite tables and written inside the batch's transaction only:
 *
 *   st_<id>_cu(k, w, u, pool, s, role, y, d, f)  one row per unit (a projection, or a pair of them):
 *       live weight w; sampling coins u and pool (hashes of k); proxy score s (memoised);
 *       role 0 / 1 training sample / 2 calibration sample; the oracle's label y (memoised, NULL
 *       until asked); the decision d the operator emitted; features f (proxy=embed).
 *   st_<id>_cplan  one row: the proxy's weights, the training rate, the calibration rate, the
 *       thresholds lo / hi, the population when the proxy was fitted, the training units that
 *       came or went since, counters and the latest estimates (EXPLAIN).
 *
 * A unit is decided by its label when the oracle gave one, else by its score: s >= hi passes.
 * The oracle is asked for the samples (training: a uniform share of pool 0; calibration: pool 1
 * with probability min(1, rate * g(s))) and for the band lo <= s < hi. Per batch: new units are
 * scored and sampled by their own coins, the thresholds are re-estimated from the samples
 * (O(sample)), and only new units and units whose score lies between an old and a new threshold
 * are re-decided (index on s). The proxy and the rates are refitted when the population has
 * doubled or halved since the last fit, or half the training sample has turned over: a refit
 * rescores every unit (CPU, no model call: features are memoised) and re-decides them all, so
 * its cost is amortised over the changes that caused it. Labels stay memoised while a unit
 * lives, so a unit that leaves the band and comes back costs nothing.
 */
#include "ss_cascade.h"
#include "ss_sem.h"

#include "ss_dispatch.h"
#include "ss_embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HI_NONE 2.0 /* hi that accepts nothing (scores lie in [0, 1]) */
#define LR_L2 0.05  /* penalty of the embed proxy's weights */
#define WORDS_B 16384 /* hashed word buckets of the words proxy */
#define WORDS_A 2.0   /* strength of the words proxy's prior (units) */

typedef struct plan {
    double *model;          /* dim + 1 weights (proxy=embed), NULL before the first fit */
    int dim;
    double ftrain, rate, lo, hi;
    int64_t nfit, tfit, tchanges, nlive, refits, oracle, proxy, band, labelled;
    ss_cascade_est_t est;
    int64_t ntrain;
    int exists;
} plan_t;

typedef struct touched {
    ss_buf_t k;
    int64_t w0;  /* weight before the batch */
    int isnew;   /* created in this batch */
} touched_t;

struct ss_cascade {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
    sqlite3 *db;
    int id;
    ss_plan_cascade_t o;
    ss_cascade_cb_t cb;
    plan_t p;
    touched_t *t;
    int nt, capt;
    ss_sem_set_t seen;   /* touched keys (index into t) */
    const ss_buf_t **tkeys;
    sqlite3_stmt *get, *ins, *addw;
};

/* ---------------------------------------------------------------- tables */

int ss_cascade_create(sqlite3 *db, int id, char *err, size_t errsz)
{
    return ss_sem_exec(db, err, errsz,
                       "CREATE TABLE IF NOT EXISTS st_%d_cu(k BLOB PRIMARY KEY, w INTEGER NOT NULL, u REAL NOT NULL, "
                       "pool INTEGER NOT NULL, s REAL, role INTEGER NOT NULL DEFAULT 0, y INTEGER, "
                       "d INTEGER NOT NULL DEFAULT 0, f BLOB) WITHOUT ROWID;"
                       "CREATE INDEX IF NOT EXISTS st_%d_cu_s ON st_%d_cu(s);"
                       "CREATE INDEX IF NOT EXISTS st_%d_cu_role ON st_%d_cu(role) WHERE role > 0;"
                       "CREATE TABLE IF NOT EXISTS st_%d_cplan(id INTEGER PRIMARY KEY CHECK (id = 1), model BLOB, "
                       "ftrain REAL, rate REAL, lo REAL, hi REAL, nfit INTEGER, tfit INTEGER, tchanges INTEGER, "
                       "nlive INTEGER, refits INTEGER, oracle INTEGER, proxy INTEGER, band INTEGER, labelled INTEGER, "
                       "pos REAL, recall REAL, prec REAL, recall_lb REAL, prec_lb REAL, ncalib INTEGER, npos INTEGER, "
                       "ntrain INTEGER)",
                       id, id, id, id, id, id);
}

static int plan_load(sqlite3 *db, int id, plan_t *p, char *err, size_t errsz)
{
    memset(p, 0, sizeof *p);
    p->hi = HI_NONE;
    p->ftrain = p->rate = 1;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(db, &st, err, errsz,
                            "SELECT model, ftrain, rate, lo, hi, nfit, tfit, tchanges, nlive, refits, oracle, proxy, "
                            "band, labelled, pos, recall, prec, recall_lb, prec_lb, ncalib, npos, ntrain "
                            "FROM st_%d_cplan WHERE id = 1", id);
    if (rc)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW) {
        p->exists = 1;
        int nb = sqlite3_column_bytes(st, 0);
        if (nb > 0) {
            p->dim = nb / (int)sizeof(double) - 1;
            p->model = malloc((size_t)nb);
            if (!p->model)
                rc = SS_ERR_NOMEM;
            else
                memcpy(p->model, sqlite3_column_blob(st, 0), (size_t)nb);
        }
        p->ftrain = sqlite3_column_double(st, 1);
        p->rate = sqlite3_column_double(st, 2);
        p->lo = sqlite3_column_double(st, 3);
        p->hi = sqlite3_column_double(st, 4);
        int64_t *iv[] = {&p->nfit, &p->tfit, &p->tchanges, &p->nlive, &p->refits, &p->oracle, &p->proxy,
                         &p->band, &p->labelled};
        for (int i = 0; i < 9; i++)
            *iv[i] = sqlite3_column_int64(st, 5 + i);
        p->est.pos = sqlite3_column_double(st, 14);
        p->est.recall = sqlite3_column_double(st, 15);
        p->est.precision = sqlite3_column_double(st, 16);
        p->est.recall_lb = sqlite3_column_double(st, 17);
        p->est.precision_lb = sqlite3_column_double(st, 18);
        p->est.ncalib = sqlite3_column_int(st, 19);
        p->est.npos = sqlite3_column_int(st, 20);
        p->ntrain = sqlite3_column_int64(st, 21);
        p->est.lo = p->lo;
        p->est.hi = p->hi;
    }
    sqlite3_finalize(st);
    return rc;
}

static int plan_save(ss_cascade_t *c, char *err, size_t errsz)
{
    plan_t *p = &c->p;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(c->db, &st, err, errsz,
                            "INSERT OR REPLACE INTO st_%d_cplan(id, model, ftrain, rate, lo, hi, nfit, tfit, tchanges, "
                            "nlive, refits, oracle, proxy, band, labelled, pos, recall, prec, recall_lb, prec_lb, "
                            "ncalib, npos, ntrain) VALUES(1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
                            "?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)", c->id);
    if (rc)
        return rc;
    if (p->model)
        sqlite3_bind_blob(st, 1, p->model, (int)(sizeof(double) * (size_t)(p->dim + 1)), SQLITE_STATIC);
    sqlite3_bind_double(st, 2, p->ftrain);
    sqlite3_bind_double(st, 3, p->rate);
    sqlite3_bind_double(st, 4, p->lo);
    sqlite3_bind_double(st, 5, p->hi);
    int64_t iv[] = {p->nfit, p->tfit, p->tchanges, p->nlive, p->refits, p->oracle, p->proxy, p->band, p->labelled};
    for (int i = 0; i < 9; i++)
        sqlite3_bind_int64(st, 6 + i, iv[i]);
    double dv[] = {p->est.pos, p->est.recall, p->est.precision, p->est.recall_lb, p->est.precision_lb};
    for (int i = 0; i < 5; i++)
        sqlite3_bind_double(st, 15 + i, dv[i]);
    sqlite3_bind_int(st, 20, p->est.ncalib);
    sqlite3_bind_int(st, 21, p->est.npos);
    sqlite3_bind_int64(st, 22, p->ntrain);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = ss_sem_sqlerr(c->db, err, errsz, "cascade plan");
    sqlite3_finalize(st);
    return rc;
}

/* ---------------------------------------------------------------- open / ref */

void ss_cascade_close(ss_cascade_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nt; i++)
        ss_buf_free(&c->t[i].k);
    free(c->t);
    free(c->tkeys);
    ss_sem_set_free(&c->seen);
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->ins);
    sqlite3_finalize(c->addw);
    free(c->p.model);
    free(c);
}

int ss_cascade_open(ss_op_t *op, ss_op_ctx_t *ctx, const ss_plan_cascade_t *opts, const ss_cascade_cb_t *cb,
                    ss_cascade_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_cascade_t *c = calloc(1, sizeof *c);
    if (!c)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    c->op = op;
    c->ctx = ctx;
    c->db = ctx->db;
    c->id = op->node->id;
    c->o = *opts;
    c->cb = *cb;
    int rc = plan_load(c->db, c->id, &c->p, err, errsz);
    if (!rc)
        rc = ss_sem_prepare(c->db, &c->get, err, errsz, "SELECT w, d FROM st_%d_cu WHERE k = ?1", c->id);
    if (!rc)
        rc = ss_sem_prepare(c->db, &c->ins, err, errsz,
                            "INSERT INTO st_%d_cu(k, w, u, pool) VALUES(?1, ?2, ?3, ?4)", c->id);
    if (!rc)
        rc = ss_sem_prepare(c->db, &c->addw, err, errsz, "UPDATE st_%d_cu SET w = w + ?2 WHERE k = ?1", c->id);
    if (!rc && ss_sem_set_init(&c->seen, 64))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (rc) {
        ss_cascade_close(c);
        return rc;
    }
    *out = c;
    return SS_OK;
}

static int has_train(const ss_cascade_t *c) { return c->o.proxy != SS_CASCADE_MODEL; }

/* Notes unit k as touched in this batch (once: the first call keeps its weight before the batch). */
static int touch(ss_cascade_t *c, const void *k, size_t kn, int64_t w0, int isnew, char *err, size_t errsz)
{
    if (c->nt == c->capt) {
        int cap = c->capt ? c->capt * 2 : 64;
        touched_t *t = realloc(c->t, sizeof *t * (size_t)cap);
        if (t)
            c->t = t;
        const ss_buf_t **tk = t ? realloc(c->tkeys, sizeof *tk * (size_t)cap) : NULL;
        if (tk)
            c->tkeys = tk;
        if (!t || !tk)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        c->capt = cap;
        ss_sem_set_free(&c->seen);
        if (ss_sem_set_init(&c->seen, (size_t)cap))
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        for (int i = 0; i < c->nt; i++) {
            c->tkeys[i] = &c->t[i].k;
            ss_sem_set_add(&c->seen, c->tkeys, &c->t[i].k, i);
        }
    }
    touched_t *t = &c->t[c->nt];
    memset(t, 0, sizeof *t);
    if (ss_buf_append(&t->k, k, kn))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    c->tkeys[c->nt] = &t->k;
    if (ss_sem_set_add(&c->seen, c->tkeys, &t->k, c->nt) >= 0) { /* touched before */
        ss_buf_free(&t->k);
        return SS_OK;
    }
    t->w0 = w0;
    t->isnew = isnew;
    c->nt++;
    return SS_OK;
}

int ss_cascade_ref(ss_cascade_t *c, const void *k, size_t kn, int64_t dw, int *d_old, char *err, size_t errsz)
{
    *d_old = 0;
    sqlite3_reset(c->get);
    sqlite3_bind_blob(c->get, 1, k, (int)kn, SQLITE_STATIC);
    int s = sqlite3_step(c->get);
    int64_t w = s == SQLITE_ROW ? sqlite3_column_int64(c->get, 0) : 0;
    if (s == SQLITE_ROW)
        *d_old = sqlite3_column_int(c->get, 1);
    sqlite3_reset(c->get);
    if (s != SQLITE_ROW && s != SQLITE_DONE)
        return ss_sem_sqlerr(c->db, err, errsz, "cascade unit");
    int rc = touch(c, k, kn, w, s != SQLITE_ROW, err, errsz);
    if (rc)
        return rc;
    sqlite3_stmt *st = s == SQLITE_ROW ? c->addw : c->ins;
    sqlite3_reset(st);
    sqlite3_bind_blob(st, 1, k, (int)kn, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, dw);
    if (st == c->ins) {
        sqlite3_bind_double(st, 3, ss_cascade_u(k, kn, c->o.seed));
        sqlite3_bind_int(st, 4, ss_cascade_pool(k, kn, c->o.seed, has_train(c)));
    }
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = ss_sem_sqlerr(c->db, err, errsz, "cascade unit");
    sqlite3_reset(st);
    return rc;
}

/* ---------------------------------------------------------------- asking models */

typedef struct keys {
    ss_buf_t *k;
    int n, cap;
} keys_t;

static void keys_free(keys_t *ks)
{
    for (int i = 0; i < ks->n; i++)
        ss_buf_free(&ks->k[i]);
    free(ks->k);
    memset(ks, 0, sizeof *ks);
}

static int keys_add(keys_t *ks, const void *k, size_t kn)
{
    if (ks->n == ks->cap) {
        int cap = ks->cap ? ks->cap * 2 : 64;
        ss_buf_t *v = realloc(ks->k, sizeof *v * (size_t)cap);
        if (!v)
            return SS_ERR_NOMEM;
        ks->k = v;
        ks->cap = cap;
    }
    ss_buf_t *b = &ks->k[ks->n];
    memset(b, 0, sizeof *b);
    if (ss_buf_append(b, k, kn))
        return SS_ERR_NOMEM;
    ks->n++;
    return SS_OK;
}

/* Appends the keys a query (statement st, bound by the caller) returns in its first column. */
static int keys_query(ss_cascade_t *c, sqlite3_stmt *st, keys_t *ks, char *err, size_t errsz)
{
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW)
        if (keys_add(ks, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0)))
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    return s == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(c->db, err, errsz, "cascade units");
}

/* Asks the oracle (proxy == 0: the operator's model; the label stored in y) or the proxy model
 * (its P(yes) stored in s) about units ks. SS_ERR_PENDING passes through. */
static int ask(ss_cascade_t *c, const keys_t *ks, int proxy, char *err, size_t errsz)
{
    if (ks->n == 0)
        return SS_OK;
    ss_buf_t *prompts = calloc((size_t)ks->n, sizeof *prompts);
    ss_infer_req_t *reqs = calloc((size_t)ks->n, sizeof *reqs);
    ss_infer_res_t *res = calloc((size_t)ks->n, sizeof *res);
    int rc = prompts && reqs && res ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ks->n && !rc; i++)
        rc = c->cb.build(c->cb.ud, ks->k[i].data, ks->k[i].len, &prompts[i], &reqs[i]);
    for (int i = 0; i < ks->n && !rc; i++)
        reqs[i].prompt = ss_buf_cstr(&prompts[i]);
    if (!rc && !proxy) {
        c->p.oracle += ks->n;
        rc = ss_sem_run(c->op, c->ctx, reqs, ks->n, res, err, errsz);
    } else if (!rc) {
        c->p.proxy += ks->n;
        rc = ss_dispatch_run(c->ctx->disp, c->o.model, &c->op->stats.infer, reqs, ks->n, res, err, errsz);
        if (rc)
            ss_errprefix(err, errsz, "%s (node %d): cascade proxy model %s", c->op->vt->name, c->id, c->o.model);
    }
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = ss_sem_prepare(c->db, &st, err, errsz, "UPDATE st_%d_cu SET %s = ?2 WHERE k = ?1", c->id,
                            proxy ? "s" : "y");
    for (int i = 0; i < ks->n && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, ks->k[i].data, (int)ks->k[i].len, SQLITE_STATIC);
        if (proxy)
            sqlite3_bind_double(st, 2, res[i].nprobs >= 2 && res[i].probs ? res[i].probs[0] : 0.5);
        else
            sqlite3_bind_int(st, 2, c->cb.decide(c->cb.ud, &res[i]) ? 1 : 0);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(c->db, err, errsz, "cascade label");
    }
    sqlite3_finalize(st);
    for (int i = 0; prompts && i < ks->n; i++)
        ss_buf_free(&prompts[i]);
    free(prompts);
    free(reqs);
    ss_sem_res_free(res, res ? ks->n : 0);
    return rc;
}

/* Labels the units a WHERE clause selects among the live units without a label. */
static int label_where(ss_cascade_t *c, const char *where, double a, double b, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    keys_t ks = {0};
    int rc = ss_sem_prepare(c->db, &st, err, errsz, "SELECT k FROM st_%d_cu WHERE y IS NULL AND w > 0 AND (%s)",
                            c->id, where);
    if (!rc) {
        sqlite3_bind_double(st, 1, a);
        sqlite3_bind_double(st, 2, b);
        rc = keys_query(c, st, &ks, err, errsz);
    }
    sqlite3_finalize(st);
    if (!rc)
        rc = ask(c, &ks, 0, err, errsz);
    keys_free(&ks);
    return rc;
}

/* ---------------------------------------------------------------- proxy scores and samples */

static double target(double x, int64_t nlive) { return x < 1 ? x * (double)nlive : x; }

static double incl(const ss_cascade_t *c, double s)
{
    double g = fmax(ss_cascade_g(s, c->o.mix), 1e-3), p = c->p.rate * g;
    return p > 1 ? 1 : p;
}

static int role_of(const ss_cascade_t *c, int pool, double u, double s)
{
    if (pool == 0)
        return u < c->p.ftrain ? 1 : 0;
    return u < incl(c, s) ? 2 : 0;
}

/* proxy=words: the distinct hashed buckets of a text's lower-cased alphanumeric words, sorted. */
static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int words_of(const char *t, ss_buf_t *out)
{
    char w[64];
    size_t n = 0;
    for (const char *p = t;; p++) {
        int alnum = *p && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'));
        if (alnum && n < sizeof w)
            w[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        if ((!alnum || !*p) && n) {
            uint32_t b = (uint32_t)(ss_hash64(w, n, 0x3057) % WORDS_B);
            if (ss_buf_append(out, &b, sizeof b))
                return SS_ERR_NOMEM;
            n = 0;
        }
        if (!*p)
            break;
    }
    uint32_t *v = (uint32_t *)out->data;
    size_t m = out->len / sizeof *v, k = 0;
    if (m)
        qsort(v, m, sizeof *v, cmp_u32);
    for (size_t i = 0; i < m; i++)
        if (!k || v[k - 1] != v[i])
            v[k++] = v[i];
    out->len = k * sizeof *v;
    return SS_OK;
}

/* The proxy's dimension: features per unit (embed), buckets (words). */
static int proxy_dim(const ss_cascade_t *c) { return c->o.proxy == SS_CASCADE_WORDS ? WORDS_B : c->cb.dim; }

/* A unit's proxy score from its stored features f (nb bytes) under the fitted model. */
static double proxy_score(const ss_cascade_t *c, const void *f, int nb)
{
    const double *w = c->p.model;
    int dim = c->p.dim;
    if (c->o.proxy == SS_CASCADE_WORDS) {
        const uint32_t *b = f;
        double z = w[dim];
        for (int i = 0; i < nb / (int)sizeof *b; i++)
            z += b[i] < (uint32_t)dim ? w[b[i]] : 0;
        return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
    }
    return nb == (int)(sizeof(float) * (size_t)dim) ? ss_cascade_lr_score(w, f, dim) : 0.5;
}

/* Features of units ks: stored in f; scores s under the current proxy (NULL before the first fit). */
static int featurise(ss_cascade_t *c, const keys_t *ks, char *err, size_t errsz)
{
    if (ks->n == 0 || c->o.proxy == SS_CASCADE_MODEL)
        return SS_OK;
    int dim = c->cb.dim, words = c->o.proxy == SS_CASCADE_WORDS, rc = SS_OK;
    float *f = words ? NULL : malloc(sizeof(float) * (size_t)ks->n * (size_t)dim);
    if (!words && !f)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!words)
        rc = c->cb.features(c->cb.ud, ks->k, ks->n, f, err, errsz);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = ss_sem_prepare(c->db, &st, err, errsz, "UPDATE st_%d_cu SET f = ?2, s = ?3 WHERE k = ?1", c->id);
    ss_buf_t txt = SS_BUF_INIT, wb = SS_BUF_INIT;
    for (int i = 0; i < ks->n && !rc; i++) {
        const void *x = words ? NULL : f + (size_t)i * (size_t)dim;
        int nb = (int)(sizeof(float) * (size_t)dim);
        if (words) {
            ss_buf_reset(&txt);
            ss_buf_reset(&wb);
            rc = c->cb.text(c->cb.ud, ks->k[i].data, ks->k[i].len, &txt);
            if (!rc && words_of(ss_buf_cstr(&txt) ? ss_buf_cstr(&txt) : "", &wb))
                rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            x = wb.data ? (const void *)wb.data : (const void *)"";
            nb = (int)wb.len;
        }
        if (rc)
            break;
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, ks->k[i].data, (int)ks->k[i].len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, x, nb, SQLITE_STATIC);
        if (c->p.model && c->p.dim == proxy_dim(c))
            sqlite3_bind_double(st, 3, proxy_score(c, x, nb));
        else
            sqlite3_bind_null(st, 3);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(c->db, err, errsz, "cascade features");
    }
    ss_buf_free(&txt);
    ss_buf_free(&wb);
    sqlite3_finalize(st);
    free(f);
    return rc;
}

/* proxy=words: naive Bayes over word presence: each bucket adds its evidence (log-odds ratio)
 * to the prior log-odds (the bias). */
static int nb_fit(const ss_buf_t *fs, const int *y, int n, int dim, double *w)
{
    double *pos = calloc((size_t)dim, sizeof *pos), *neg = calloc((size_t)dim, sizeof *neg);
    if (!pos || !neg) {
        free(pos);
        free(neg);
        return SS_ERR_NOMEM;
    }
    int np = 0;
    for (int i = 0; i < n; i++) {
        np += y[i] != 0;
        const uint32_t *b = (const uint32_t *)fs[i].data;
        for (size_t j = 0; j < fs[i].len / sizeof *b; j++)
            if (b[j] < (uint32_t)dim)
                (y[i] ? pos : neg)[b[j]] += 1;
    }
    /* a bucket's weight: the log-odds of a positive among the units with the word, shrunk towards
     * the overall rate r (a prior worth WORDS_A units), less the overall log-odds: 0 for a word
     * never seen in training */
    double r = (np + 0.5) / (n + 1.0);
    for (int j = 0; j < dim; j++) {
        double rj = (pos[j] + WORDS_A * r) / (pos[j] + neg[j] + WORDS_A);
        w[j] = log(rj / (1 - rj)) - log(r / (1 - r));
    }
    w[dim] = log(r / (1 - r));
    free(pos);
    free(neg);
    return SS_OK;
}

/* Fits the proxy to the labelled training units and rescores every unit. */
static int fit_and_rescore(ss_cascade_t *c, char *err, size_t errsz)
{
    int dim = proxy_dim(c), words = c->o.proxy == SS_CASCADE_WORDS, n = 0, cap = 0, rc;
    ss_buf_t *fs = NULL;
    int *y = NULL;
    sqlite3_stmt *st = NULL;
    rc = ss_sem_prepare(c->db, &st, err, errsz,
                        "SELECT f, y FROM st_%d_cu WHERE pool = 0 AND w > 0 AND y IS NOT NULL AND f IS NOT NULL "
                        "ORDER BY k", c->id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        int nb = sqlite3_column_bytes(st, 0);
        if (!words && nb != (int)(sizeof(float) * (size_t)dim))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            ss_buf_t *nf = realloc(fs, sizeof *nf * (size_t)cap);
            int *ny = nf ? realloc(y, sizeof(int) * (size_t)cap) : NULL;
            if (nf)
                fs = nf;
            if (ny)
                y = ny;
            if (!nf || !ny) {
                rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
                break;
            }
        }
        memset(&fs[n], 0, sizeof fs[n]);
        if (nb && ss_buf_append(&fs[n], sqlite3_column_blob(st, 0), (size_t)nb)) {
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            break;
        }
        y[n++] = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    st = NULL;
    double *w = rc ? NULL : malloc(sizeof(double) * (size_t)(dim + 1));
    float *x = rc || words ? NULL : malloc(sizeof(float) * (size_t)(n ? n : 1) * (size_t)dim);
    if (!rc && (!w || (!words && !x)))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && x; i++)
        memcpy(x + (size_t)i * (size_t)dim, fs[i].data, sizeof(float) * (size_t)dim);
    if (!rc)
        rc = words ? nb_fit(fs, y, n, dim, w) : ss_cascade_lr_fit(x, y, n, dim, LR_L2, w);
    if (rc == SS_ERR_NOMEM)
        ss_seterr(err, errsz, rc, "out of memory");
    for (int i = 0; i < n; i++)
        ss_buf_free(&fs[i]);
    free(fs);
    free(x);
    free(y);
    if (rc) {
        free(w);
        return rc;
    }
    free(c->p.model);
    c->p.model = w;
    c->p.dim = dim;
    c->p.ntrain = n;
    sqlite3_stmt *up = NULL;
    rc = ss_sem_prepare(c->db, &st, err, errsz, "SELECT k, f FROM st_%d_cu WHERE f IS NOT NULL", c->id);
    if (!rc)
        rc = ss_sem_prepare(c->db, &up, err, errsz, "UPDATE st_%d_cu SET s = ?2 WHERE k = ?1", c->id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        sqlite3_reset(up);
        sqlite3_bind_blob(up, 1, sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0), SQLITE_TRANSIENT);
        sqlite3_bind_double(up, 2, proxy_score(c, sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1)));
        if (sqlite3_step(up) != SQLITE_DONE)
            rc = ss_sem_sqlerr(c->db, err, errsz, "cascade rescore");
    }
    sqlite3_finalize(st);
    sqlite3_finalize(up);
    return rc;
}

/* The calibration rate: the scale of g(s) at which the live units of pool 1 yield `sample` of
 * them in expectation (every one of them when there are not more). */
static int fit_rate(ss_cascade_t *c, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(c->db, &st, err, errsz, "SELECT s FROM st_%d_cu WHERE pool = 1 AND w > 0", c->id);
    double *g = NULL;
    int n = 0, cap = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            double *v = realloc(g, sizeof *v * (size_t)cap);
            if (!v) {
                rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
                break;
            }
            g = v;
        }
        g[n++] = fmax(ss_cascade_g(sqlite3_column_double(st, 0), c->o.mix), 1e-3);
    }
    sqlite3_finalize(st);
    double want = target(c->o.sample, c->p.nlive);
    if (!rc && want >= n) {
        c->p.rate = 1e9;
    } else if (!rc) {
        double lo = 0, hi = 1e9;
        for (int it = 0; it < 200; it++) {
            double m = (lo + hi) / 2, sum = 0;
            for (int i = 0; i < n; i++)
                sum += fmin(1, m * g[i]);
            if (sum < want)
                lo = m;
            else
                hi = m;
        }
        c->p.rate = hi;
    }
    free(g);
    return rc;
}

/* Sets every unit's role from its coins and score (after a refit). */
static int assign_roles(ss_cascade_t *c, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL, *up = NULL;
    int rc = ss_sem_prepare(c->db, &st, err, errsz, "SELECT k, pool, u, s, role FROM st_%d_cu", c->id);
    if (!rc)
        rc = ss_sem_prepare(c->db, &up, err, errsz, "UPDATE st_%d_cu SET role = ?2 WHERE k = ?1", c->id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        int r = role_of(c, sqlite3_column_int(st, 1), sqlite3_column_double(st, 2), sqlite3_column_double(st, 3));
        if (r == sqlite3_column_int(st, 4))
            continue;
        sqlite3_reset(up);
        sqlite3_bind_blob(up, 1, sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0), SQLITE_TRANSIENT);
        sqlite3_bind_int(up, 2, r);
        if (sqlite3_step(up) != SQLITE_DONE)
            rc = ss_sem_sqlerr(c->db, err, errsz, "cascade roles");
    }
    sqlite3_finalize(st);
    sqlite3_finalize(up);
    return rc;
}

/* New thresholds from the labelled samples (O(sample)). */
static int estimate(ss_cascade_t *c, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(c->db, &st, err, errsz,
                            "SELECT s, w, y, role FROM st_%d_cu WHERE role > 0 AND w > 0 AND y IS NOT NULL "
                            "AND s IS NOT NULL", c->id);
    ss_cascade_pt_t *pts = NULL;
    int n = 0, cap = 0;
    double pool = has_train(c) ? SS_CASCADE_CALIB_SHARE : 1.0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 512;
            ss_cascade_pt_t *v = realloc(pts, sizeof *v * (size_t)cap);
            if (!v) {
                rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
                break;
            }
            pts = v;
        }
        ss_cascade_pt_t *p = &pts[n++];
        p->s = sqlite3_column_double(st, 0);
        p->w = (double)sqlite3_column_int64(st, 1);
        p->y = sqlite3_column_int(st, 2);
        p->calib = sqlite3_column_int(st, 3) == 2;
        p->pi = p->calib ? pool * incl(c, p->s) : 0;
    }
    sqlite3_finalize(st);
    if (!rc) {
        ss_cascade_design_t d = {.pool = pool, .rate = c->p.rate, .mix = c->o.mix, .units = c->p.nlive};
        ss_cascade_thresholds(pts, n, &d, c->o.recall, c->o.precision, c->o.delta, &c->p.est);
        if (!isfinite(c->p.est.hi) || c->p.est.hi > HI_NONE)
            c->p.est.hi = HI_NONE;
    }
    free(pts);
    return rc;
}

/* Decides units ks (all live units when ks is NULL) and reports every changed decision. */
static int decide(ss_cascade_t *c, const keys_t *ks, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL, *up = NULL;
    int rc = ks ? ss_sem_prepare(c->db, &st, err, errsz, "SELECT k, s, y, d FROM st_%d_cu WHERE k = ?1 AND w <> 0",
                                 c->id)
                : ss_sem_prepare(c->db, &st, err, errsz, "SELECT k, s, y, d FROM st_%d_cu WHERE w <> 0", c->id);
    if (!rc)
        rc = ss_sem_prepare(c->db, &up, err, errsz, "UPDATE st_%d_cu SET d = ?2 WHERE k = ?1", c->id);
    keys_t ch = {0};
    int *dold = NULL, *dnew = NULL, nch = 0, capch = 0;
    for (int i = 0; !rc && (ks ? i < ks->n : 1); i++) {
        if (ks) {
            sqlite3_reset(st);
            sqlite3_bind_blob(st, 1, ks->k[i].data, (int)ks->k[i].len, SQLITE_STATIC);
        }
        int s = sqlite3_step(st);
        if (s != SQLITE_ROW) {
            if (s != SQLITE_DONE)
                rc = ss_sem_sqlerr(c->db, err, errsz, "cascade decide");
            if (ks)
                continue;
            break;
        }
        int d0 = sqlite3_column_int(st, 3);
        int d1 = sqlite3_column_type(st, 2) != SQLITE_NULL ? sqlite3_column_int(st, 2) != 0
                 : sqlite3_column_type(st, 1) != SQLITE_NULL ? sqlite3_column_double(st, 1) >= c->p.est.hi
                                                             : 0;
        if (d0 == d1)
            continue;
        if (nch == capch) {
            capch = capch ? capch * 2 : 64;
            int *a = realloc(dold, sizeof *a * (size_t)capch), *b = a ? realloc(dnew, sizeof *b * (size_t)capch) : NULL;
            if (a)
                dold = a;
            if (b)
                dnew = b;
            if (!a || !b) {
                rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
                break;
            }
        }
        if (keys_add(&ch, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0))) {
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            break;
        }
        dold[nch] = d0;
        dnew[nch++] = d1;
    }
    sqlite3_finalize(st);
    for (int i = 0; i < nch && !rc; i++) { /* after the scan: the callback may read the tables */
        sqlite3_reset(up);
        sqlite3_bind_blob(up, 1, ch.k[i].data, (int)ch.k[i].len, SQLITE_STATIC);
        sqlite3_bind_int(up, 2, dnew[i]);
        if (sqlite3_step(up) != SQLITE_DONE)
            rc = ss_sem_sqlerr(c->db, err, errsz, "cascade decide");
        if (!rc)
            rc = c->cb.changed(c->cb.ud, ch.k[i].data, ch.k[i].len, dold[i], dnew[i], err, errsz);
    }
    sqlite3_finalize(up);
    keys_free(&ch);
    free(dold);
    free(dnew);
    return rc;
}

/* ---------------------------------------------------------------- settle */

static int refit(ss_cascade_t *c, char *err, size_t errsz)
{
    plan_t *p = &c->p;
    int rc = SS_OK;
    if (has_train(c)) {
        /* pool 0 holds a quarter of the units: the rate that draws `train` of them from it */
        p->ftrain = fmin(1, target(c->o.train, p->nlive) /
                                ((1 - SS_CASCADE_CALIB_SHARE) * (double)(p->nlive ? p->nlive : 1)));
        rc = ss_sem_exec(c->db, err, errsz, "UPDATE st_%d_cu SET role = CASE WHEN u < %.17g THEN 1 ELSE 0 END "
                                            "WHERE pool = 0", c->id, p->ftrain);
        if (!rc)
            rc = label_where(c, "role = 1", 0, 0, err, errsz);
        if (!rc)
            rc = fit_and_rescore(c, err, errsz);
    } else {
        p->ftrain = 0;
    }
    if (!rc)
        rc = fit_rate(c, err, errsz);
    if (!rc)
        rc = assign_roles(c, err, errsz);
    if (!rc)
        rc = label_where(c, "role = 2", 0, 0, err, errsz);
    if (!rc)
        rc = estimate(c, err, errsz);
    if (!rc)
        rc = label_where(c, "s >= ?1 AND s < ?2", p->est.lo, p->est.hi, err, errsz);
    if (!rc)
        rc = decide(c, NULL, err, errsz);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = ss_sem_prepare(c->db, &st, err, errsz, "SELECT count(*) FROM st_%d_cu WHERE role = 1 AND w > 0", c->id);
    if (!rc && sqlite3_step(st) == SQLITE_ROW)
        p->tfit = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    p->nfit = p->nlive;
    p->tchanges = 0;
    p->refits++;
    return rc;
}

/* Units with lo <= s < hi among those a range selects, and the new ones, re-decided. */
static int incremental(ss_cascade_t *c, const keys_t *fresh, char *err, size_t errsz)
{
    plan_t *p = &c->p;
    sqlite3_stmt *get = NULL, *up = NULL;
    int rc = ss_sem_prepare(c->db, &get, err, errsz, "SELECT pool, u, s, y FROM st_%d_cu WHERE k = ?1", c->id);
    if (!rc)
        rc = ss_sem_prepare(c->db, &up, err, errsz, "UPDATE st_%d_cu SET role = ?2 WHERE k = ?1", c->id);
    keys_t need = {0};
    for (int i = 0; i < fresh->n && !rc; i++) {
        sqlite3_reset(get);
        sqlite3_bind_blob(get, 1, fresh->k[i].data, (int)fresh->k[i].len, SQLITE_STATIC);
        if (sqlite3_step(get) != SQLITE_ROW)
            continue;
        int r = role_of(c, sqlite3_column_int(get, 0), sqlite3_column_double(get, 1), sqlite3_column_double(get, 2));
        int unlabelled = sqlite3_column_type(get, 3) == SQLITE_NULL;
        p->tchanges += r == 1;
        sqlite3_reset(up);
        sqlite3_bind_blob(up, 1, fresh->k[i].data, (int)fresh->k[i].len, SQLITE_STATIC);
        sqlite3_bind_int(up, 2, r);
        if (sqlite3_step(up) != SQLITE_DONE)
            rc = ss_sem_sqlerr(c->db, err, errsz, "cascade roles");
        if (!rc && r && unlabelled && keys_add(&need, fresh->k[i].data, fresh->k[i].len))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    sqlite3_finalize(get);
    sqlite3_finalize(up);
    if (!rc)
        rc = ask(c, &need, 0, err, errsz);
    keys_free(&need);
    double lo0 = p->est.lo, hi0 = p->est.hi;
    if (!rc)
        rc = estimate(c, err, errsz);
    /* re-decided: the new units and those between an old and a new threshold */
    keys_t re = {0};
    ss_sem_set_t seen = {0};
    const ss_buf_t **rk = NULL;
    double lo1 = p->est.lo, hi1 = p->est.hi;
    double ranges[2][2] = {{fmin(lo0, lo1), fmax(lo0, lo1)}, {fmin(hi0, hi1), fmax(hi0, hi1)}};
    for (int i = 0; i < fresh->n && !rc; i++)
        rc = keys_add(&re, fresh->k[i].data, fresh->k[i].len) ? ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory")
                                                              : SS_OK;
    for (int r = 0; r < 2 && !rc; r++) {
        if (ranges[r][0] >= ranges[r][1])
            continue;
        sqlite3_stmt *st = NULL;
        rc = ss_sem_prepare(c->db, &st, err, errsz, "SELECT k FROM st_%d_cu WHERE s >= ?1 AND s < ?2 AND w <> 0",
                            c->id);
        if (!rc) {
            sqlite3_bind_double(st, 1, ranges[r][0]);
            sqlite3_bind_double(st, 2, ranges[r][1]);
            rc = keys_query(c, st, &re, err, errsz);
        }
        sqlite3_finalize(st);
    }
    /* de-duplicate (a new unit may lie in a range too; the ranges may overlap) */
    keys_t uniq = {0};
    rk = calloc((size_t)(re.n ? re.n : 1), sizeof *rk);
    if (!rc && (!rk || ss_sem_set_init(&seen, (size_t)re.n)))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < re.n && !rc; i++) {
        rk[i] = &re.k[i];
        if (ss_sem_set_add(&seen, rk, &re.k[i], i) < 0 && keys_add(&uniq, re.k[i].data, re.k[i].len))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    free(rk);
    ss_sem_set_free(&seen);
    keys_free(&re);
    /* the band needs labels: ask for those of the re-decided units that lack one */
    keys_t band = {0};
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = ss_sem_prepare(c->db, &st, err, errsz,
                            "SELECT 1 FROM st_%d_cu WHERE k = ?1 AND y IS NULL AND w > 0 AND s >= ?2 AND s < ?3", c->id);
    for (int i = 0; i < uniq.n && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, uniq.k[i].data, (int)uniq.k[i].len, SQLITE_STATIC);
        sqlite3_bind_double(st, 2, lo1);
        sqlite3_bind_double(st, 3, hi1);
        if (sqlite3_step(st) == SQLITE_ROW && keys_add(&band, uniq.k[i].data, uniq.k[i].len))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    sqlite3_finalize(st);
    if (!rc)
        rc = ask(c, &band, 0, err, errsz);
    keys_free(&band);
    if (!rc)
        rc = decide(c, &uniq, err, errsz);
    keys_free(&uniq);
    return rc;
}

int ss_cascade_settle(ss_cascade_t *c, char *err, size_t errsz)
{
    plan_t *p = &c->p;
    sqlite3_stmt *st = NULL, *del = NULL;
    keys_t fresh = {0};
    int rc = ss_sem_prepare(c->db, &st, err, errsz, "SELECT w, role FROM st_%d_cu WHERE k = ?1", c->id);
    if (!rc)
        rc = ss_sem_prepare(c->db, &del, err, errsz, "DELETE FROM st_%d_cu WHERE k = ?1", c->id);
    for (int i = 0; i < c->nt && !rc; i++) {
        touched_t *t = &c->t[i];
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, t->k.data, (int)t->k.len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
            continue;
        int64_t w1 = sqlite3_column_int64(st, 0);
        int role = sqlite3_column_int(st, 1);
        p->nlive += (w1 > 0) - (t->w0 > 0);
        if (w1 == 0) {
            p->tchanges += role == 1;
            sqlite3_reset(del);
            sqlite3_bind_blob(del, 1, t->k.data, (int)t->k.len, SQLITE_STATIC);
            if (sqlite3_step(del) != SQLITE_DONE)
                rc = ss_sem_sqlerr(c->db, err, errsz, "cascade units");
        } else if (t->isnew && keys_add(&fresh, t->k.data, t->k.len)) {
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        }
    }
    sqlite3_finalize(st);
    sqlite3_finalize(del);
    if (!rc)
        rc = c->o.proxy != SS_CASCADE_MODEL ? featurise(c, &fresh, err, errsz) : ask(c, &fresh, 1, err, errsz);
    if (!rc && p->nlive > 0) {
        int again = !p->exists || p->nfit <= 0 || p->nlive > 2 * p->nfit || 2 * p->nlive < p->nfit ||
                    p->tchanges > (p->tfit / 2 > 16 ? p->tfit / 2 : 16) ||
                    (c->o.proxy != SS_CASCADE_MODEL && (!p->model || p->dim != proxy_dim(c)));
        rc = again ? refit(c, err, errsz) : incremental(c, &fresh, err, errsz);
    }
    p->lo = p->est.lo;
    p->hi = p->est.hi;
    keys_free(&fresh);
    if (!rc)
        rc = plan_save(c, err, errsz);
    return rc;
}

/* ---------------------------------------------------------------- EXPLAIN */

int ss_cascade_info(sqlite3 *db, int id, ss_cascade_info_t *out)
{
    memset(out, 0, sizeof *out);
    plan_t p;
    char err[SS_ERRSZ];
    if (plan_load(db, id, &p, err, sizeof err) || !p.exists) {
        free(p.model);
        return SS_ERR_NOTFOUND;
    }
    out->units = p.nlive;
    out->oracle_requests = p.oracle;
    out->proxy_requests = p.proxy;
    out->refits = p.refits;
    out->lo = p.lo;
    out->hi = p.hi;
    out->recall = p.est.recall;
    out->precision = p.est.precision;
    out->recall_lb = p.est.recall_lb;
    out->precision_lb = p.est.precision_lb;
    out->pos = p.est.pos;
    out->calib = p.est.ncalib;
    out->train = p.ntrain;
    free(p.model);
    sqlite3_stmt *st = NULL;
    if (ss_sem_prepare(db, &st, err, sizeof err,
                       "SELECT count(*) FILTER (WHERE y IS NOT NULL), count(*) FILTER (WHERE s >= ?1 AND s < ?2) "
                       "FROM st_%d_cu WHERE w > 0", id) == SS_OK) {
        sqlite3_bind_double(st, 1, p.lo);
        sqlite3_bind_double(st, 2, p.hi);
        if (sqlite3_step(st) == SQLITE_ROW) {
            out->labelled = sqlite3_column_int64(st, 0);
            out->band = sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    return SS_OK;
}

int ss_cascade_describe(sqlite3 *db, int id, const char *indent, ss_buf_t *out)
{
    ss_cascade_info_t in;
    if (ss_cascade_info(db, id, &in))
        return SS_OK;
    char hi[32];
    if (in.hi >= HI_NONE)
        snprintf(hi, sizeof hi, "none");
    else
        snprintf(hi, sizeof hi, "s >= %.4f", in.hi);
    ss_buf_printf(out, "%scascade of #%d: %lld live units; reject s < %.4f, accept %s, oracle between "
                       "(%lld units in the band)\n",
                  indent, id, (long long)in.units, in.lo, hi, (long long)in.band);
    ss_buf_printf(out, "%s  samples: %lld calibration units, %lld training units; estimated positives %.0f\n",
                  indent, (long long)in.calib, (long long)in.train, in.pos);
    ss_buf_printf(out, "%s  estimated recall %.3f (lower bound %.3f), precision %.3f (lower bound %.3f)\n", indent,
                  in.recall, in.recall_lb, in.precision, in.precision_lb);
    ss_buf_printf(out, "%s  oracle labels held %lld, asked %lld; proxy requests %lld; proxy refits %lld\n", indent,
                  (long long)in.labelled, (long long)in.oracle_requests, (long long)in.proxy_requests,
                  (long long)in.refits);
    return SS_OK;
}

/* ---------------------------------------------------------------- helpers of the operators */

int ss_cascade_key_row(const void *k, size_t kn, const int *cols, int n, ss_row_t **out)
{
    *out = NULL;
    ss_row_t *p = NULL;
    int rc = ss_row_decode(k, kn, &p);
    if (rc)
        return rc;
    int width = 0;
    for (int i = 0; i < n; i++)
        width = cols[i] + 1 > width ? cols[i] + 1 : width;
    if (n == 0) { /* the projection is the whole row */
        *out = p;
        return SS_OK;
    }
    ss_row_t *r = ss_row_new(width);
    if (!r) {
        ss_row_free(p);
        return SS_ERR_NOMEM;
    }
    for (int i = 0; i < n && i < p->n && !rc; i++)
        rc = ss_row_set(r, cols[i], &p->v[i]);
    ss_row_free(p);
    if (rc) {
        ss_row_free(r);
        return rc;
    }
    *out = r;
    return SS_OK;
}

int ss_cascade_row_text(const ss_template_t *t, int side, const ss_row_t *row, ss_buf_t *out)
{
    int cols[SS_SEM_MAXCOLS];
    int n = ss_template_cols(t, side, cols, SS_SEM_MAXCOLS), rc = SS_OK;
    for (int j = 0; j < n && !rc; j++) {
        if (cols[j] < 0 || cols[j] >= row->n || row->v[cols[j]].t == SS_NULL)
            continue;
        if (out->len)
            rc = ss_buf_putc(out, '\n');
        if (!rc)
            rc = ss_val_to_text(&row->v[cols[j]], out);
    }
    return rc;
}

int ss_cascade_instruction(const ss_template_t *t, ss_buf_t *out)
{
    int rc = SS_OK;
    for (int i = 0; t && i < t->nparts && !rc; i++)
        if (t->parts[i].text)
            rc = ss_buf_puts(out, t->parts[i].text);
    return rc;
}

/* ---------------------------------------------------------------- embed proxy features */

/* Word vectors are cheap (a table lookup) only for the static embedder: with it a unit also gets
 * the element-wise maximum of its words' vectors, which keeps the one telling word that the mean
 * of a long text dilutes. Other embedders give the text's embedding alone (one request per text). */
static int pooled(const ss_embedder_t *e) { return e && e->kind && !strcmp(e->kind, "wink"); }

int ss_cascade_embed_dim(const ss_embedder_t *e)
{
    return e ? (pooled(e) ? 2 * e->dim : e->dim) + 1 : 0;
}

/* Appends the lower-cased alphanumeric words of t as separate strings to ws (NUL-separated). */
static int split_words(const char *t, ss_buf_t *ws, int *nw)
{
    size_t n = 0;
    for (const char *p = t;; p++) {
        int alnum = *p && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'));
        if (alnum) {
            char ch = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
            if (ss_buf_putc(ws, ch))
                return SS_ERR_NOMEM;
            n++;
        } else if (n) {
            if (ss_buf_putc(ws, 0))
                return SS_ERR_NOMEM;
            (*nw)++;
            n = 0;
        }
        if (!*p)
            return SS_OK;
    }
}

int ss_cascade_embed_features(ss_embedder_t *e, const float *instr, const char *const *texts, int n, float *out,
                              char *err, size_t errsz)
{
    int d = e->dim, dim = ss_cascade_embed_dim(e);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1) * (size_t)d);
    if (!v)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = ss_embedder_embed(e, texts, n, v, err, errsz);
    for (int i = 0; i < n && !rc; i++) {
        float *o = out + (size_t)i * (size_t)dim, dot = 0;
        memcpy(o, v + (size_t)i * (size_t)d, sizeof(float) * (size_t)d);
        for (int j = 0; j < d; j++)
            dot += o[j] * instr[j];
        o[dim - 1] = dot;
        if (!pooled(e))
            continue;
        ss_buf_t ws = SS_BUF_INIT;
        int nw = 0;
        if (split_words(texts[i], &ws, &nw))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        const char **w = rc ? NULL : calloc((size_t)(nw ? nw : 1), sizeof *w);
        float *wv = w ? malloc(sizeof(float) * (size_t)(nw ? nw : 1) * (size_t)d) : NULL;
        if (!rc && (!w || !wv))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        for (int k = 0, at = 0; !rc && k < nw; k++) {
            w[k] = ws.data + at;
            at += (int)strlen(w[k]) + 1;
        }
        if (!rc && nw)
            rc = ss_embedder_embed(e, w, nw, wv, err, errsz);
        for (int j = 0; !rc && j < d; j++) {
            float m = nw ? wv[j] : 0;
            for (int k = 1; k < nw; k++)
                m = wv[(size_t)k * (size_t)d + (size_t)j] > m ? wv[(size_t)k * (size_t)d + (size_t)j] : m;
            o[d + j] = m;
        }
        free(w);
        free(wv);
        ss_buf_free(&ws);
    }
    free(v);
    return rc;
}
