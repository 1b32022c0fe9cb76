/*
 * ss_cascade.h — model cascades of SEM_FILTER (option cascade = '...',
 * docs/QUALITY.md): a cheap proxy scores every unit (a row's projection, or
 * a pair of them), two thresholds learnt from an importance sample labelled by the oracle
 * (the operator's model) decide most units, and the units between them go to the oracle,
 * so that with probability 1 - delta the result meets the recall and precision targets.
 *
 *  - cascade_stats.c: the statistics, no state: hashing a unit to its sampling coins,
 *    importance weights, logistic regression (the embed proxy), and the thresholds with
 *    their estimates (exact binomial bounds over a Poisson sample, Horvitz-Thompson point
 *    estimates, fixed-sequence scans);
 *  - sem_cascade.c: the incremental state of one operator in SQLite (units with their
 *    memoised features, proxy scores and oracle labels; the plan: proxy weights, sampling
 *    rates, thresholds, estimates), maintained as units arrive and leave.
 *
 * The operator owns what a unit is: it gives the oracle's prompt, the features of a unit,
 * and emits the rows of a unit whose decision changed.
 */
#ifndef SS_CASCADE_H
#define SS_CASCADE_H

#include "ss_op.h"
#include "ss_sem.h"

/* ---------------------------------------------------------------- statistics (cascade_stats.c) */

/* The sampling coins of a unit (a function of its key and the seed only, so a unit keeps them
 * while it lives and a restart draws the same): u uniform in [0, 1), pool 0 (training: a quarter
 * of the units) or 1 (calibration: the other three quarters, SS_CASCADE_CALIB_SHARE; every unit is
 * in pool 1 when there is no training sample). */
#define SS_CASCADE_CALIB_SHARE 0.75
double ss_cascade_u(const void *k, size_t kn, int64_t seed);
int ss_cascade_pool(const void *k, size_t kn, int64_t seed, int has_train);

/* Importance weight of a proxy score s in [0, 1]: mix + (1 - mix) * sqrt(s) (SUPG's square root,
 * mixed with a uniform share so that low scores are sampled too). */
double ss_cascade_g(double s, double mix);

/* Logistic regression: fits w[0..dim] (w[dim] = bias) to n examples x[i*dim ..] with labels y[i]
 * by Newton's method with an L2 penalty l2 on the weights (not the bias). Deterministic. */
int ss_cascade_lr_fit(const float *x, const int *y, int n, int dim, double l2, double *w);
/* P(y = 1 | x) under w. */
double ss_cascade_lr_score(const double *w, const float *x, int dim);

/* One labelled unit of the samples: its proxy score, live weight, label, and how it was drawn. */
typedef struct ss_cascade_pt {
    double s;      /* proxy score */
    double w;      /* live weight (rows with this projection) */
    int y;         /* the oracle's label */
    int calib;     /* 1: in the calibration sample (drawn with probability pi); 0: training */
    double pi;     /* inclusion probability of a calibration unit (over the whole population) */
} ss_cascade_pt_t;

/* Thresholds and what they achieve, estimated from the calibration sample. */
typedef struct ss_cascade_est {
    double lo, hi;           /* reject s < lo, accept s >= hi (unless labelled), oracle between */
    double pos;              /* estimated positives (weight) in the population */
    double fn, fp;           /* estimated unlabelled positives below lo, negatives at or above hi */
    double recall, precision;       /* point estimates of what the result achieves */
    double recall_lb, precision_lb; /* lower confidence bounds (together at 1 - delta) */
    int ncalib, npos;        /* calibration units, and positives among them */
} ss_cascade_est_t;

/* The calibration design the thresholds need: a unit with score s is in the calibration sample
 * with probability pool * min(1, rate * max(g(s, mix), 1e-3)) (pool: the share of units eligible
 * for calibration), among `units` live units. */
typedef struct ss_cascade_design {
    double pool, rate, mix;
    int64_t units;
} ss_cascade_design_t;

/* Exact binomial bounds (Clopper-Pearson style, by inverting the binomial tail): the largest M
 * <= cap with P(Bin(M, p) <= k) >= alpha (an upper bound, at level alpha, on how many units carry a
 * trait when k of them were seen, each seen with probability >= p), and the smallest M with
 * P(Bin(M, p) >= k) >= alpha (a lower bound when each was seen with probability <= p). */
int64_t ss_cascade_binom_ucb(int64_t k, double p, double alpha, int64_t cap);
int64_t ss_cascade_binom_lcb(int64_t k, double p, double alpha);
/* The largest proportion f with P(Bin(n, f) <= k) >= alpha (Clopper-Pearson's upper bound). */
double ss_cascade_prop_ucb(int64_t k, int64_t n, double alpha);

/* Chooses lo as high and hi as low as the sample allows while the recall and precision targets
 * hold with probability 1 - delta, counted in units: exact binomial bounds on the positives lost
 * below lo, the positives in all (delta/4) and the negatives accepted at or above hi, each from
 * the calibration units seen in that region and the design's floor on their inclusion
 * probability (valid however the positives hide among low scores). A uniform design (mix = 1)
 * bounds the share of positives lost by the share of calibration positives below lo (delta/2;
 * negatives accepted delta/4); otherwise the count lost (delta/4; negatives delta/2). Candidate
 * thresholds tested in a fixed sequence, stopping at the first failure. Every point is a labelled
 * unit (known exactly), training ones included; only calibration units extrapolate. Sorts pts
 * by score. No calibration unit: lo = 0, hi = +inf (everything to the oracle). */
void ss_cascade_thresholds(ss_cascade_pt_t *pts, int n, const ss_cascade_design_t *d, double recall,
                           double precision, double delta, ss_cascade_est_t *out);

/* ---------------------------------------------------------------- incremental state (sem_cascade.c) */

typedef struct ss_cascade ss_cascade_t;

typedef struct ss_cascade_cb {
    /* The oracle's (and a proxy model's) request for unit k: appends the prompt, fills req (its
     * prompt pointer is set by the caller). */
    int (*build)(void *ud, const void *k, size_t kn, ss_buf_t *prompt, ss_infer_req_t *req);
    /* proxy=embed: the features of units keys[0..n), dim floats each, into out[i * dim ..]. */
    int (*features)(void *ud, const ss_buf_t *keys, int n, float *out, char *err, size_t errsz);
    int dim;              /* features per unit (proxy=embed) */
    /* proxy=words: the text of unit k (the template's values), appended to out. */
    int (*text)(void *ud, const void *k, size_t kn, ss_buf_t *out);
    /* Unit k's decision changed from d_old to d_new after ss_cascade_settle (a new unit that
     * passes: 0 -> 1): the operator emits its live rows with weight (d_new - d_old). */
    int (*changed)(void *ud, const void *k, size_t kn, int d_old, int d_new, char *err, size_t errsz);
    /* The oracle's decision from its answer (yes_prob of the operator). */
    int (*decide)(void *ud, const ss_infer_res_t *res);
    void *ud;
} ss_cascade_cb_t;

/* Creates the state tables st_<id>_cu (units) and st_<id>_cplan (the plan) if absent. */
int ss_cascade_create(sqlite3 *db, int node_id, char *err, size_t errsz);

/* Opens the cascade of op for one batch (reads the plan; prepares statements). opts from the
 * node's cascade option. Closed with ss_cascade_close (also after a failure or SS_ERR_PENDING). */
int ss_cascade_open(ss_op_t *op, ss_op_ctx_t *ctx, const ss_plan_cascade_t *opts, const ss_cascade_cb_t *cb,
                    ss_cascade_t **out, char *err, size_t errsz);
void ss_cascade_close(ss_cascade_t *c); /* NULL-safe */

/* Moves unit k's live weight by dw (a new unit is created). *d_old gets its decision before this
 * batch (0 for a new unit): the operator emits the delta's rows with it at once. */
int ss_cascade_ref(ss_cascade_t *c, const void *k, size_t kn, int64_t dw, int *d_old, char *err, size_t errsz);

/* Ends the batch: drops the units whose weight reached 0, scores and samples the new ones, refits
 * the proxy and the sampling rates when the population or the training sample changed enough
 * (amortised: the population doubled or halved, half the training sample turned over), asks the
 * oracle for the labels the samples and the band need, moves the thresholds, and re-decides only
 * the new units and those whose score lies between an old and a new threshold (all units after a
 * refit), calling cb->changed for each decision that changed. May return SS_ERR_PENDING (the
 * dispatcher's non-blocking mode): everything it wrote is in the batch's transaction. */
int ss_cascade_settle(ss_cascade_t *c, char *err, size_t errsz);

/* The plan for EXPLAIN: thresholds, samples, estimates, oracle labels asked. Appends one line per
 * fact, each starting with indent; nothing if the operator has not run yet. */
int ss_cascade_describe(sqlite3 *db, int node_id, const char *indent, ss_buf_t *out);

/* Counters of the cascade since it was created (from its plan row); zeros if none. */
typedef struct ss_cascade_info {
    int64_t units, labelled, oracle_requests, proxy_requests, refits, band, calib, train;
    double lo, hi, recall, precision, recall_lb, precision_lb, pos;
} ss_cascade_info_t;
int ss_cascade_info(sqlite3 *db, int node_id, ss_cascade_info_t *out);

/* ---------------------------------------------------------------- helpers of the operators */

/* The row a unit's projection key stands for: key (ss_sem_proj of cols[0..n)) decoded, its values
 * put back at their columns (the others NULL), so that the operator's prompt renders as for the
 * original row. Caller frees with ss_row_free. */
int ss_cascade_key_row(const void *k, size_t kn, const int *cols, int n, ss_row_t **out);
/* What a unit's embedding is computed from: the values of the template's columns of `side`, one
 * per line. */
int ss_cascade_row_text(const ss_template_t *t, int side, const ss_row_t *row, ss_buf_t *out);
/* proxy=embed: the features of texts[0..n) under embedder e, ss_cascade_embed_dim(e) floats each into
 * out: the text's embedding, the maximum of its words' vectors per dimension (the static embedder
 * only), and last the cosine with the instruction's embedding instr. */
struct ss_embedder;
int ss_cascade_embed_dim(const struct ss_embedder *e);
int ss_cascade_embed_features(struct ss_embedder *e, const float *instr, const char *const *texts, int n, float *out,
                              char *err, size_t errsz);
/* The instruction without its column references (the embed proxy's first guess of relevance). */
int ss_cascade_instruction(const ss_template_t *t, ss_buf_t *out);


/* ---------------------------------------------------------------- SEM_JOIN's cascade (sem_join_cascade.c) */
/* The task line of SEM_JOIN's yes/no prompt, the same for the plain join and its cascade. */
#define SS_SEM_JOIN_TASK "Answer yes or no: do the two inputs satisfy the instruction together?"
/* What SEM_JOIN tells its cascade: the settings, each side's template columns, the yes cut-off. */
typedef struct ss_sem_join_cascade {
    ss_plan_cascade_t co;
    int cols[2][SS_SEM_MAXCOLS];
    int ncols[2];
    double yes_prob;
} ss_sem_join_cascade_t;
/* A unit's key: the left projection's length (u32), the left projection, the right one. */
int ss_sem_join_pair_key(const ss_buf_t *lk, const ss_buf_t *rk, ss_buf_t *key);
/* Features per pair of proxy=embed under embedder e: 2 * dim + 1. */
int ss_sem_join_cascade_dim(const struct ss_embedder *e);
/* One port's delta through the cascaded join: integrates it into st_<id>_s<side>, emits it with
 * its units' decisions, then settles the cascade (may return SS_ERR_PENDING). */
int ss_sem_join_cascade_apply(ss_op_t *op, ss_op_ctx_t *ctx, const ss_sem_join_cascade_t *jc, int side,
                              const ss_zset_t *in, ss_zset_t *out, char *err, size_t errsz);
/* The whole output of the cascaded join. */
int ss_sem_join_cascade_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, const ss_sem_join_cascade_t *jc, ss_zset_t *out,
                                 char *err, size_t errsz);
/* sem_join.c: appends the concatenation of encoded rows l and r with weight w to out. */
int ss_sem_join_emit(const ss_buf_t *l, const ss_buf_t *r, int64_t w, ss_zset_t *out);

#endif
