/*
 * cascade_stats.c — the statistics of model cascades (ss_cascade.h), no state:
 *
 *  - sampling coins: each unit's u (uniform) and pool (training / calibration) are hashes
 *    of its key, so sampling is Poisson sampling that a unit keeps while it lives: an
 *    insert joins the sample with its own probability, a delete leaves it, nothing else
 *    moves, and a rate change only moves the units whose u lies between the old and the
 *    new probability;
 *  - importance weights g(s) = mix + (1 - mix) sqrt(s) (the square root of SUPG, Kang et
 *    al. 2020, mixed with a uniform share as LOTUS does, so that the positives a low
 *    score hides can be found);
 *  - logistic regression by Newton's method (the embed proxy, fitted to a uniform
 *    training sample the oracle labelled);
 *  - thresholds: Horvitz-Thompson estimates of the unlabelled positives below lo (lost
 *    recall) and the unlabelled negatives at or above hi (lost precision) from the
 *    calibration sample, with one-sided normal bounds at delta/2 each; candidate
 *    thresholds are tested in a fixed order (lo upwards, hi downwards) and the scan
 *    stops at the first that fails, which keeps the error rate of the sequence at
 *    delta/2 without a union bound.
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
    return (int)(h >> 63);
}

double ss_cascade_g(double s, double mix)
{
    s = s < 0 ? 0 : s > 1 ? 1 : s;
    return mix + (1 - mix) * sqrt(s);
}

double ss_cascade_z(double p)
{
    double lo = -40, hi = 40;
    for (int i = 0; i < 200; i++) {
        double m = (lo + hi) / 2;
        if (0.5 * erfc(m / sqrt(2.0)) > p)
            lo = m;
        else
            hi = m;
    }
    return (lo + hi) / 2;
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

/* ---------------------------------------------------------------- thresholds */

static int cmp_pt(const void *a, const void *b)
{
    const ss_cascade_pt_t *x = a, *y = b;
    return x->s < y->s ? -1 : x->s > y->s;
}

/* HT weight and variance factor of a point: only calibration units extrapolate. */
static double ht_a(const ss_cascade_pt_t *p) { return p->calib && p->pi > 0 ? p->w / p->pi : 0; }
static double ht_v(const ss_cascade_pt_t *p)
{
    return p->calib && p->pi > 0 ? (1 - p->pi) / (p->pi * p->pi) * p->w * p->w : 0;
}

void ss_cascade_thresholds(ss_cascade_pt_t *pts, int n, double recall, double precision, double delta,
                           ss_cascade_est_t *out)
{
    memset(out, 0, sizeof *out);
    out->lo = 0;
    out->hi = INFINITY;
    out->recall = out->precision = out->recall_lb = out->precision_lb = 1;
    if (n <= 0)
        return;
    qsort(pts, (size_t)n, sizeof *pts, cmp_pt);
    double z = ss_cascade_z(delta / 2), q = 1 - recall, cp = (1 - precision) / precision;
    double P = 0, V1 = 0; /* estimated positives; their HT variance */
    for (int i = 0; i < n; i++) {
        out->ncalib += pts[i].calib;
        out->npos += pts[i].calib && pts[i].y;
        if (pts[i].y) {
            P += ht_a(&pts[i]);
            V1 += ht_v(&pts[i]);
        }
    }
    out->pos = P;
    if (!out->ncalib)
        return;
    /* lo, upwards: at candidate t = pts[k].s the points [0, k) are below. FN(t) = sum of
     * y (a - w) below (HT of the positives below, less the labelled ones, which are exact). */
    double fn = 0, vb = 0, vmax = 0, best_fn = 0, best_vb = 0, best_vmax = 0;
    int cal_below = 0;
    for (int k = 0; k < n;) {
        int e = k;
        while (e < n && pts[e].s == pts[k].s)
            e++;
        /* candidate t = pts[k].s when k > 0 (t = 0 rejects nothing: always feasible) and a
         * calibration unit lies below it: below the lowest one the sample knows nothing */
        if (k > 0 && cal_below) {
            double var = (1 - q) * (1 - q) * vb + q * q * (V1 - vb) + vmax;
            if (fn - q * P + z * sqrt(var) > 0)
                break;
            out->lo = pts[k].s;
            best_fn = fn, best_vb = vb, best_vmax = vmax;
        }
        for (int i = k; i < e; i++) {
            if (pts[i].y) {
                fn += ht_a(&pts[i]) - pts[i].w;
                vb += ht_v(&pts[i]);
            }
            vmax = fmax(vmax, ht_v(&pts[i]) > 0 ? ht_v(&pts[i]) : 0);
            cal_below += pts[i].calib;
        }
        k = e;
    }
    /* hi, downwards from +inf: at candidate t = pts[k].s the points [k, n) are above; the true
     * positives are P - FN(lo). */
    double tp = P - best_fn, fp = 0, v0 = 0, vmaxa = 0, best_fp = 0, best_v0 = 0;
    double v1a = 0; /* variance of the positives at or above lo */
    int cal_above = 0;
    for (int i = 0; i < n; i++)
        if (pts[i].y && pts[i].s >= out->lo)
            v1a += ht_v(&pts[i]);
    for (int e = n; e > 0;) {
        int k = e - 1;
        while (k > 0 && pts[k - 1].s == pts[e - 1].s)
            k--;
        if (pts[k].s < out->lo)
            break;
        for (int i = k; i < e; i++) {
            if (!pts[i].y) {
                fp += ht_a(&pts[i]) - pts[i].w;
                v0 += ht_v(&pts[i]);
            }
            vmaxa = fmax(vmaxa, ht_v(&pts[i]));
            cal_above += pts[i].calib;
        }
        if (!cal_above) { /* above the highest calibration unit the sample knows nothing */
            e = k;
            continue;
        }
        double var = v0 + cp * cp * v1a + vmaxa;
        if (fp - cp * tp + z * sqrt(var) > 0)
            break;
        out->hi = pts[k].s;
        best_fp = fp, best_v0 = v0;
        e = k;
    }
    out->fn = best_fn > 0 ? best_fn : 0;
    out->fp = best_fp > 0 ? best_fp : 0;
    double TP = tp > 0 ? tp : 0;
    out->recall = P > 0 ? TP / P : 1;
    out->precision = TP + out->fp > 0 ? TP / (TP + out->fp) : 1;
    double sdfn = sqrt(best_vb + best_vmax), sdfp = sqrt(best_v0);
    out->recall_lb = P > 0 ? fmax(0, 1 - (out->fn + z * sdfn) / P) : 1;
    out->precision_lb = TP > 0 ? TP / (TP + out->fp + z * sdfp) : (out->fp > 0 ? 0 : 1);
    if (out->recall > 1)
        out->recall = 1;
}
