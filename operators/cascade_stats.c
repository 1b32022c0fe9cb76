/*
 * cascade_stats.c — the statistics of model cascades (ss_cascade.h), no state:
 *
 *  - sampling coins: each unit's u (uniform) and pool (training 1/4 / calibration 3/4) are hashes
 *    of its key, so sampling is Poisson sampling that a unit keeps while it lives: an
 *    insert joins the sample with its own probability, a delete leaves it, nothing else
 *    moves, and a rate change only moves the units whose u lies between the old and the
 *    new probability;
 *  - importance weights g(s) = mix + (1 - mix) sqrt(s) (the square root of SUPG, Kang et
 *    al. 2020, mixed with a uniform share as LOTUS does, so that the positives a low
 *    score hides can be found);
 *  - logistic regression by Newton's method (the embed proxy, fitted to a uniform
 *    training sample the oracle labelled);
 *  - thresholds with exact binomial bounds: every unit is in the calibration sample
 *    with probability at least pi_floor(s) (Poisson sampling, g increasing in s), so
 *    the count of sampled positives below lo (negatives at or above hi) is at least
 *    binomial, and inverting the binomial tail (Clopper-Pearson style) bounds the
 *    positives lost below lo (delta/4) and the negatives accepted above hi (delta/2),
 *    with a lower bound on the positives (delta/4): valid however heavy the tail of
 *    positives at low scores (the normal approximation of the first version was not:
 *    7 of 10 seeds on WordNet's `animal`). Candidate thresholds are tested in a fixed
 *    order (lo upwards, hi downwards), stopping at the first that fails.
 */
#include "ss_cascade.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- coins */

double ss_cascade_u(const void *k, size_t kn, int64_t seed)
{
    uint64_t h = ss_hash64(k, kn, 0xc0ffee ^ (uint64_t)seed * 0x9e3779b97f4a7c15ULL);
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

int ss_cascade_pool(const void *k, size_t kn, int64_t seed, int has_train)
{
    if (!has_train)
        return 1;
    uint64_t h = ss_hash64(k, kn, 0x7001 ^ (uint64_t)seed * 0xbf58476d1ce4e5b9ULL);
    return (h >> 62) != 0; /* pool 1 with probability 3/4 = SS_CASCADE_CALIB_SHARE */
}

double ss_cascade_g(double s, double mix)
{
    s = s < 0 ? 0 : s > 1 ? 1 : s;
    return mix + (1 - mix) * sqrt(s);
}

/* ---------------------------------------------------------------- logistic regression */

static double sigmoid(double z)
{
    return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
}

double ss_cascade_lr_score(const double *w, const float *x, int dim)
{
    double z = w[dim];
    for (int j = 0; j < dim; j++)
        z += w[j] * x[j];
    return sigmoid(z);
}

/* Solves A x = b (A symmetric positive definite, n x n, overwritten) by Cholesky; -1 if not SPD. */
static int cholesky_solve(double *A, double *b, int n)
{
    for (int j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int k = 0; k < j; k++)
            d -= A[j * n + k] * A[j * n + k];
        if (d <= 0)
            return -1;
        d = sqrt(d);
        A[j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double s = A[i * n + j];
            for (int k = 0; k < j; k++)
                s -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = s / d;
        }
    }
    for (int i = 0; i < n; i++) { /* L y = b */
        double s = b[i];
        for (int k = 0; k < i; k++)
            s -= A[i * n + k] * b[k];
        b[i] = s / A[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) { /* L^T x = y */
        double s = b[i];
        for (int k = i + 1; k < n; k++)
            s -= A[k * n + i] * b[k];
        b[i] = s / A[i * n + i];
    }
    return 0;
}

int ss_cascade_lr_fit(const float *x, const int *y, int n, int dim, double l2, double *w)
{
    int d = dim + 1;
    double *H = malloc(sizeof(double) * (size_t)d * (size_t)d), *g = malloc(sizeof(double) * (size_t)d);
    if (!H || !g) {
        free(H);
        free(g);
        return SS_ERR_NOMEM;
    }
    memset(w, 0, sizeof(double) * (size_t)d);
    int npos = 0;
    for (int i = 0; i < n; i++)
        npos += y[i] != 0;
    /* the bias starts at the log-odds of the labels (smoothed), so an all-one-class sample gives a
     * constant score near its rate instead of diverging */
    w[dim] = log((npos + 0.5) / (n - npos + 0.5));
    for (int it = 0; it < 50 && npos > 0 && npos < n; it++) {
        memset(H, 0, sizeof(double) * (size_t)d * (size_t)d);
        memset(g, 0, sizeof(double) * (size_t)d);
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * (size_t)dim;
            double p = ss_cascade_lr_score(w, xi, dim), r = p - (y[i] != 0), h = p * (1 - p);
            for (int a = 0; a < d; a++) {
                double xa = a < dim ? xi[a] : 1.0;
                g[a] += r * xa;
                for (int b = 0; b <= a; b++)
                    H[a * d + b] += h * xa * (b < dim ? xi[b] : 1.0);
            }
        }
        for (int a = 0; a < d; a++) {
            for (int b = 0; b < a; b++)
                H[b * d + a] = H[a * d + b];
            double pen = a < dim ? l2 : 1e-6;
            H[a * d + a] += pen;
            g[a] += a < dim ? l2 * w[a] : 0;
        }
        if (cholesky_solve(H, g, d))
            break;
        double step = 0;
        for (int a = 0; a < d; a++) {
            w[a] -= g[a];
            step = fmax(step, fabs(g[a]));
        }
        if (step < 1e-7)
            break;
    }
    free(H);
    free(g);
    return SS_OK;
}

/* ---------------------------------------------------------------- exact binomial bounds */

/* log P(Bin(n, p) <= k), summed in log space (n may be large and p small: no underflow). */
static double binom_logcdf(int64_t k, int64_t n, double p)
{
    if (k >= n || p <= 0)
        return 0;
    if (k < 0 || p >= 1)
        return -INFINITY;
    double lp = log(p), lq = log1p(-p), lc = lgamma((double)n + 1), m = -INFINITY, sum = 0;
    /* terms i = 0..k: log C(n, i) + i log p + (n - i) log q; summed relative to their maximum */
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i <= k; i++) {
            double t = lc - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) + (double)i * lp + (double)(n - i) * lq;
            if (pass == 0)
                m = fmax(m, t);
            else
                sum += exp(t - m);
        }
    double r = m + log(sum);
    return r > 0 ? 0 : r;
}

int64_t ss_cascade_binom_ucb(int64_t k, double p, double alpha, int64_t cap)
{
    if (p <= 0)
        return cap;
    if (p >= 1)
        return k < cap ? k : cap;
    double la = log(alpha);
    if (k >= cap || binom_logcdf(k, cap, p) >= la)
        return cap;
    int64_t lo = k, hi = cap; /* P(Bin(lo) <= k) >= alpha > P(Bin(hi) <= k) */
    while (hi - lo > 1) {
        int64_t m = lo + (hi - lo) / 2;
        if (binom_logcdf(k, m, p) >= la)
            lo = m;
        else
            hi = m;
    }
    return lo;
}

int64_t ss_cascade_binom_lcb(int64_t k, double p, double alpha)
{
    if (k <= 0 || p >= 1)
        return k > 0 ? k : 0;
    if (p <= 0)
        return k;
    /* the smallest M with P(Bin(M, p) >= k) >= alpha, i.e. P(Bin(M, p) <= k - 1) <= 1 - alpha */
    double lb = log1p(-alpha);
    int64_t lo = k - 1, hi = k;
    while (binom_logcdf(k - 1, hi, p) > lb) {
        lo = hi;
        hi *= 2;
    }
    while (hi - lo > 1) {
        int64_t m = lo + (hi - lo) / 2;
        if (binom_logcdf(k - 1, m, p) > lb)
            lo = m;
        else
            hi = m;
    }
    return hi;
}

double ss_cascade_prop_ucb(int64_t k, int64_t n, double alpha)
{
    if (n <= 0 || k >= n)
        return 1;
    double la = log(alpha), lo = (double)k / (double)n, hi = 1; /* P(Bin(n, lo) <= k) >= alpha */
    for (int it = 0; it < 60; it++) {
        double m = (lo + hi) / 2;
        if (binom_logcdf(k, n, m) >= la)
            lo = m;
        else
            hi = m;
    }
    return lo;
}

/* ---------------------------------------------------------------- thresholds */

static int cmp_pt(const void *a, const void *b)
{
    const ss_cascade_pt_t *x = a, *y = b;
    return x->s < y->s ? -1 : x->s > y->s;
}

/* HT weight of a point: only calibration units extrapolate (point estimates for EXPLAIN). */
static double ht_a(const ss_cascade_pt_t *p) { return p->calib && p->pi > 0 ? p->w / p->pi : 0; }

/* The smallest calibration inclusion probability of a unit with score >= s (g is increasing). */
static double pi_floor(const ss_cascade_design_t *d, double s)
{
    return d->pool * fmin(1, d->rate * fmax(ss_cascade_g(s, d->mix), 1e-3));
}

void ss_cascade_thresholds(ss_cascade_pt_t *pts, int n, const ss_cascade_design_t *d, double recall,
                           double precision, double delta, ss_cascade_est_t *out)
{
    memset(out, 0, sizeof *out);
    out->lo = 0;
    out->hi = INFINITY;
    out->recall = out->precision = out->recall_lb = out->precision_lb = 1;
    if (n <= 0)
        return;
    qsort(pts, (size_t)n, sizeof *pts, cmp_pt);
    int64_t cap = d->units > n ? d->units : n, lpos = 0, kpos = 0;
    double q = 1 - recall, cp = (1 - precision) / precision, P = 0;
    for (int i = 0; i < n; i++) {
        out->ncalib += pts[i].calib;
        kpos += pts[i].calib && pts[i].y;
        lpos += pts[i].y != 0;
        if (pts[i].y)
            P += ht_a(&pts[i]);
    }
    out->npos = (int)kpos;
    out->pos = P > (double)lpos ? P : (double)lpos;
    if (!out->ncalib)
        return;
    /* With a uniform calibration sample (mix = 1) the calibration positives are a uniform sample
     * of the positives, so the share of them below lo bounds the share of positives lost (an exact
     * binomial bound on a proportion, delta/2: SUPG's recall target with an exact bound); the
     * negatives accepted get delta/4 and the lower bound on all positives delta/4. Otherwise the
     * positives lost are bounded as a count (delta/4), as are the positives (delta/4) and the
     * negatives accepted (delta/2). */
    int uniform = d->mix >= 1 && pi_floor(d, 0) < 1; /* with everything sampled the count is exact */
    double a_pos = delta / 4, a_lost = uniform ? delta / 2 : delta / 4, a_fp = uniform ? delta / 4 : delta / 2;
    /* the positives: at least the labelled ones, and at least what the calibration positives
     * certify (each positive is sampled with probability <= pi_floor(1)) */
    int64_t plb = ss_cascade_binom_lcb(kpos, pi_floor(d, 1), a_pos);
    plb = plb > lpos ? plb : lpos;
    /* lo, upwards over the sample's scores: below t lie K calibration positives and L labelled
     * positives; every positive below t was sampled with probability >= pi_floor(0), so at most
     * binom_ucb(K) positives lie there and at most that less L are lost. */
    int64_t k_below = 0, l_below = 0;
    double best_lost = 0; /* positives lost, as a count */
    for (int k = 0; k < n;) {
        int e = k;
        while (e < n && pts[e].s == pts[k].s)
            e++;
        if (k > 0) {
            double lost;
            if (uniform) {
                double f = ss_cascade_prop_ucb(k_below, kpos, a_lost);
                if (f > q)
                    break;
                lost = f * (double)plb;
            } else {
                lost = (double)(ss_cascade_binom_ucb(k_below, pi_floor(d, 0), a_lost, cap) - l_below);
                if (lost > q * (double)plb)
                    break;
            }
            out->lo = pts[k].s;
            best_lost = lost > 0 ? lost : 0;
        }
        for (int i = k; i < e; i++)
            if (pts[i].y) {
                k_below += pts[i].calib;
                l_below++;
            }
        k = e;
    }
    /* hi, downwards: above t every negative was sampled with probability >= pi_floor(t), so at
     * most binom_ucb(K0) negatives lie there, less the labelled ones L0 */
    double tplb = (double)plb - best_lost;
    int64_t k0 = 0, l0 = 0, best_fp = 0;
    for (int e = n; e > 0;) {
        int k = e - 1;
        while (k > 0 && pts[k - 1].s == pts[e - 1].s)
            k--;
        if (pts[k].s < out->lo)
            break;
        for (int i = k; i < e; i++)
            if (!pts[i].y) {
                k0 += pts[i].calib;
                l0++;
            }
        int64_t fp = ss_cascade_binom_ucb(k0, pi_floor(d, pts[k].s), a_fp, cap) - l0;
        fp = fp > 0 ? fp : 0;
        if ((double)fp > cp * (tplb > 0 ? tplb : 0))
            break;
        out->hi = pts[k].s;
        best_fp = fp;
        e = k;
    }
    /* point estimates (Horvitz-Thompson) of what the thresholds achieve, and the bounds */
    double fn = 0, fpe = 0;
    for (int i = 0; i < n; i++) {
        if (pts[i].y && pts[i].s < out->lo)
            fn += ht_a(&pts[i]) - pts[i].w;
        if (!pts[i].y && pts[i].s >= out->hi)
            fpe += ht_a(&pts[i]) - pts[i].w;
    }
    out->fn = fn > 0 ? fn : 0;
    out->fp = fpe > 0 ? fpe : 0;
    double TP = out->pos - out->fn > 0 ? out->pos - out->fn : 0;
    out->recall = out->pos > 0 ? TP / out->pos : 1;
    out->precision = TP + out->fp > 0 ? TP / (TP + out->fp) : 1;
    out->recall_lb = plb > 0 ? fmax(0, 1 - best_lost / (double)plb) : 1;
    out->precision_lb = tplb > 0 ? tplb / (tplb + (double)best_fp) : (best_fp > 0 ? 0 : 1);
}
