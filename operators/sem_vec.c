/*
 * sem_vec.c — what the embedding-only operators share (ss_sem.h, "embedding-only
 * operators"): the text a row is embedded as, an exact and deterministic score, and
 * exact k-nearest search over a FAISS index. FAISS scores in float, and a batched
 * search may sum in another order than a single one, so two runs over the same data
 * could order near-ties differently; the operators therefore take FAISS's answers as
 * candidates only, score them again in double in a fixed order, break ties by the
 * row's encoding, and widen the search until nothing left out could rank in the top k.
 * That makes SEM_SIM_JOIN / SEM_SEARCH / SEM_DEDUP / SEM_GROUP equal to a run from
 * scratch over the same rows, whatever order they came in.
 */
#include "ss_sem.h"

#include "ss_vindex.h"

#include <stdlib.h>
#include <string.h>

int ss_sem_vec_text(const ss_template_t *t, int side, const ss_row_t *row, ss_buf_t *out)
{
    int cols[SS_SEM_MAXCOLS], n = 0;
    if (t)
        n = ss_template_cols(t, side, cols, SS_SEM_MAXCOLS);
    else
        for (int i = 0; i < row->n && i < SS_SEM_MAXCOLS; i++)
            cols[n++] = i;
    int rc = SS_OK;
    for (int j = 0; j < n && !rc; j++) {
        if (j)
            rc = ss_buf_putc(out, '\n');
        if (!rc && cols[j] >= 0 && cols[j] < row->n && row->v[cols[j]].t != SS_NULL)
            rc = ss_val_to_text(&row->v[cols[j]], out);
    }
    return rc;
}

double ss_sem_cos(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

void ss_sem_hits_free(ss_sem_hit_t *h, int n)
{
    for (int i = 0; h && i < n; i++)
        ss_buf_free(&h[i].tie);
    free(h);
}

static int hit_cmp(const void *pa, const void *pb)
{
    const ss_sem_hit_t *a = pa, *b = pb;
    if (a->s != b->s)
        return a->s > b->s ? -1 : 1;
    size_t n = SS_MIN(a->tie.len, b->tie.len);
    int c = n ? memcmp(a->tie.data, b->tie.data, n) : 0;
    return c ? c : (a->tie.len > b->tie.len) - (a->tie.len < b->tie.len);
}

void ss_sem_hits_sort(ss_sem_hit_t *h, int n)
{
    if (n > 1)
        qsort(h, (size_t)n, sizeof *h, hit_cmp);
}

/* Bound on |FAISS score - exact score| for unit vectors of dim floats (float rounding of a sum). */
static double float_slack(int dim) { return 1e-5 + 2e-7 * dim; }

int ss_sem_vidx_topk(ss_sem_vidx_t *x, const float *q, int dim, int k,
                     int (*exact)(void *ud, int64_t id, double *s, ss_buf_t *tie), void *ud, ss_sem_hit_t **out,
                     int *n, char *err, size_t errsz)
{
    *out = NULL;
    *n = 0;
    int64_t count = ss_sem_vidx_count(x);
    if (k <= 0 || count == 0)
        return SS_OK;
    if (x->dim != dim)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "query of %d dimensions for an index of %d", dim, x->dim);
    int want = (int)SS_MIN((int64_t)k + 8, count);
    for (;;) {
        int64_t *ids = malloc((size_t)want * sizeof *ids);
        float *sims = malloc((size_t)want * sizeof *sims);
        ss_sem_hit_t *h = calloc((size_t)want, sizeof *h);
        int found = 0, rc = ids && sims && h ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        if (!rc)
            rc = ss_sem_vidx_search(x, q, want, ids, sims, &found, err, errsz);
        for (int i = 0; i < found && !rc; i++) {
            h[i].id = ids[i];
            rc = exact(ud, ids[i], &h[i].s, &h[i].tie);
        }
        if (rc) {
            free(ids);
            free(sims);
            ss_sem_hits_free(h, found);
            return rc;
        }
        ss_sem_hits_sort(h, found);
        /* done when every vector was returned, or the k-th exact score beats the best any vector
         * left out can have (its FAISS score is at most the last one returned) */
        int done = found < want || (int64_t)found >= count ||
                   (found >= k && h[k - 1].s > (double)sims[found - 1] + 2 * float_slack(dim));
        free(ids);
        free(sims);
        if (done) {
            int keep = SS_MIN(k, found);
            for (int i = keep; i < found; i++)
                ss_buf_free(&h[i].tie);
            *out = h;
            *n = keep;
            return SS_OK;
        }
        ss_sem_hits_free(h, found);
        want = (int)SS_MIN((int64_t)want * 2, count);
    }
}

int ss_sem_vidx_load(ss_sem_vidx_t *x, sqlite3 *db, const char *sql, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return ss_sem_sqlerr(db, err, errsz, "vector index load");
    int rc = SS_OK, s;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        int nb = sqlite3_column_bytes(st, 1);
        if (nb <= 0 || nb % (int)sizeof(float))
            continue;
        rc = ss_sem_vidx_add(x, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1), nb / (int)sizeof(float), err,
                             errsz);
    }
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(db, err, errsz, "vector index load");
    sqlite3_finalize(st);
    return rc;
}
