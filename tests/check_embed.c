/*
 * check_embed.c — tests of the "wink" word-vector embedder (determinism, unit norm,
 * similar sentences closer than unrelated ones, unknown-word fallback, bad files) and
 * of the FAISS vector index (flat and IVF: add / replace / remove / top-k / range search
 * against brute force). The wink tests need data/wink100.vec (scripts/setup-embeddings.sh)
 * and say so when it is missing.
 */
#include "ss_embed.h"
#include "ss_llm.h"
#include "ss_vindex.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *vec_path(void)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/data/wink100.vec", tu_source_dir());
    return buf;
}

static ss_embedder_t *wink(void)
{
    ss_embed_opts_t o = {.kind = "wink", .vec_path = vec_path()};
    ss_embedder_t *e = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_embedder_open(&o, &e, err, sizeof err) == SS_OK, "%s", err);
    return e;
}

static float dot(const float *a, const float *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return (float)s;
}

#define NEED_VECTORS()                                                                       \
    do {                                                                                     \
        if (!tu_exists(vec_path())) {                                                        \
            fprintf(stderr, "skipped: %s missing (run scripts/setup-embeddings.sh)\n", vec_path()); \
            return;                                                                          \
        }                                                                                    \
    } while (0)

START_TEST(test_wink_similarity)
{
    NEED_VECTORS();
    ss_embedder_t *e = wink();
    ck_assert_int_eq(e->dim, 100);
    ck_assert_str_eq(e->kind, "wink");
    const char *t[] = {"The cat sat on the mat.", "A kitten was sleeping on the rug.",
                       "Stock markets fell sharply after the central bank raised interest rates.",
                       "Shares dropped as the bank increased rates.", "THE CAT SAT ON THE MAT!"};
    enum { N = 5 };
    float v[N * 100], w[N * 100];
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_embedder_embed(e, t, N, v, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_embedder_embed(e, t, N, w, err, sizeof err), SS_OK);
    ck_assert_int_eq(memcmp(v, w, sizeof v), 0); /* deterministic */
    for (int i = 0; i < N; i++) ck_assert_float_eq_tol(dot(v + i * 100, v + i * 100, 100), 1.0f, 1e-5);
    float cat_kitten = dot(v, v + 100, 100), cat_stocks = dot(v, v + 200, 100);
    float stocks_shares = dot(v + 200, v + 300, 100), kitten_shares = dot(v + 100, v + 300, 100);
    ck_assert_msg(cat_kitten > cat_stocks, "cat~kitten %f <= cat~stocks %f", cat_kitten, cat_stocks);
    ck_assert_msg(stocks_shares > kitten_shares, "stocks~shares %f <= kitten~shares %f", stocks_shares,
                  kitten_shares);
    ck_assert_float_eq_tol(dot(v, v + 400, 100), 1.0f, 1e-5); /* case and punctuation ignored */
    ss_embedder_destroy(e);
}
END_TEST

START_TEST(test_wink_unknown_words)
{
    NEED_VECTORS();
    ss_embedder_t *e = wink();
    const char *t[] = {"zzqxv blorptf", "zzqxv blorptf", "qqqzzk", "", "zzqxv cat"};
    float v[5 * 100], c[100];
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_embedder_embed(e, t, 5, v, err, sizeof err), SS_OK);
    ck_assert_int_eq(memcmp(v, v + 100, 100 * sizeof(float)), 0);  /* hashed fallback is stable */
    ck_assert_float_eq_tol(dot(v, v, 100), 1.0f, 1e-5);
    ck_assert_float_lt(fabsf(dot(v, v + 200, 100)), 0.5f);          /* and differs per text */
    ck_assert_float_eq_tol(dot(v + 300, v + 300, 100), 1.0f, 1e-5); /* empty text too */
    const char *cat = "cat";
    ck_assert_int_eq(ss_embedder_embed(e, &cat, 1, c, err, sizeof err), SS_OK);
    ck_assert_float_eq_tol(dot(c, v + 400, 100), 1.0f, 1e-5);       /* unknown words are skipped */
    ss_embedder_destroy(e);
}
END_TEST

START_TEST(test_embedder_errors)
{
    char *dir = tu_tmpdir(), *bad = ss_sprintf("%s/bad.vec", dir), err[SS_ERRSZ];
    FILE *f = fopen(bad, "wb");
    fwrite("SSWVEC01\x05\0\0\0\x64\0\0\0", 1, 16, f); /* header promising more than there is */
    fwrite("\x10\0\0\0\0\0\0\0", 1, 8, f);
    fclose(f);
    ss_embedder_t *e = NULL;
    ss_embed_opts_t o = {.kind = "wink", .vec_path = bad};
    ck_assert_int_eq(ss_embedder_open(&o, &e, err, sizeof err), SS_ERR_INVALID);
    ck_assert_msg(strstr(err, bad) && strstr(err, "5 words x 100 dims"), "%s", err);
    ck_assert_ptr_null(e);
    o.vec_path = "/nonexistent/w.vec";
    ck_assert_int_eq(ss_embedder_open(&o, &e, err, sizeof err), SS_ERR_IO);
    ck_assert_msg(strstr(err, "setup-embeddings.sh"), "%s", err);
    o.kind = "glove";
    ck_assert_int_eq(ss_embedder_open(&o, &e, err, sizeof err), SS_ERR_INVALID);
    o.kind = "model";
    ck_assert_int_eq(ss_embedder_open(&o, &e, err, sizeof err), SS_ERR_INVALID); /* no dispatcher */
    ss_embedder_destroy(NULL);
    free(bad);
    free(dir);
}
END_TEST

START_TEST(test_vectors_found_beside_installation)
{
    NEED_VECTORS();
    /* found from the executable's place, whatever the current directory */
    char cwd[4096], err[SS_ERRSZ];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir("/"), 0);
    unsetenv("SEMSTREAM_VECTORS");
    const char *p = ss_embed_default_vectors();
    ck_assert_ptr_nonnull(p);
    char real[4096];
    ck_assert_ptr_nonnull(realpath(vec_path(), real));
    ck_assert_str_eq(p, real);
    ss_embedder_t *e = NULL;
    ck_assert_msg(ss_embedder_open(NULL, &e, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_str_eq(e->kind, "wink");
    ck_assert_msg(strstr(e->desc, "wink: averaged static word vectors (100-d)") && strstr(e->desc, real), "%s", e->desc);
    ss_embedder_destroy(e);
    char d[600];
    ck_assert_int_eq(ss_embed_describe(NULL, NULL, d, sizeof d), SS_OK);
    ck_assert_ptr_nonnull(strstr(d, real));
    /* missing vectors are an error that says where they were looked for, never another embedder */
    setenv("SEMSTREAM_VECTORS", "/nonexistent/vectors.vec", 1);
    ck_assert_ptr_null(ss_embed_default_vectors());
    ck_assert_int_eq(ss_embedder_open(NULL, &e, err, sizeof err), SS_ERR_NOTFOUND);
    ck_assert_msg(strstr(err, "not installed (looked at /nonexistent/vectors.vec)") &&
                  strstr(err, "SET embedder = 'model'"), "%s", err);
    ck_assert_ptr_null(e);
    ck_assert_int_eq(ss_embed_describe("wink", NULL, d, sizeof d), SS_ERR_NOTFOUND);
    ck_assert_int_eq(ss_embed_describe("model", "m", d, sizeof d), SS_OK);
    ck_assert_str_eq(d, "model: pooled embeddings of model m");
    unsetenv("SEMSTREAM_VECTORS");
    ck_assert_int_eq(chdir(cwd), 0);
}
END_TEST

START_TEST(test_model_embedder_local)
{
    char p[4096], err[SS_ERRSZ];
    char *dir = tu_tmpdir(), *cache = ss_sprintf("%s/cache.db", dir);
    ss_dispatch_opts_t dopts = {cache, 8, 0};
    ss_dispatch_t *d = NULL;
    ck_assert_int_eq(ss_dispatch_open(&dopts, &d, err, sizeof err), SS_OK);
    ss_infer_backend_t *b = ss_backend_local_new(tu_model_path("stories260K.gguf", p, sizeof p), 1, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    ck_assert_int_eq(ss_dispatch_add_model(d, "tiny", b, 1, err, sizeof err), SS_OK);
    ss_infer_stats_t acct = {0};
    ss_embed_opts_t o = {.kind = "model", .dispatch = d, .acct = &acct};
    ss_embedder_t *e = NULL;
    ck_assert_msg(ss_embedder_open(&o, &e, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_str_eq(e->kind, "model");
    ck_assert_int_eq(e->dim, 64); /* stories260K's hidden size */
    const char *t[] = {"Lily went to the park.", "Tom ate an apple.", "Lily went to the park."};
    float v[3 * 64], w[3 * 64];
    ck_assert_msg(ss_embedder_embed(e, t, 3, v, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(ss_embedder_embed(e, t, 3, w, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(memcmp(v, w, sizeof v), 0);
    ck_assert_int_eq(memcmp(v, v + 128, 64 * sizeof(float)), 0);
    for (int i = 0; i < 3; i++) ck_assert_float_eq_tol(dot(v + i * 64, v + i * 64, 64), 1.0f, 1e-5);
    ck_assert_float_lt(dot(v, v + 64, 64), 0.99999f);
    /* probe + 2 distinct texts computed once; the second embed came from the cache */
    ck_assert_int_eq(acct.calls, 3);
    ck_assert_int_eq(acct.cache_hits, 2);
    ss_embedder_destroy(e);
    ss_dispatch_close(d);
    free(cache);
    free(dir);
}
END_TEST

/* ---- vector index vs brute force ---- */

enum { DIM = 24 };

static void rand_unit(float *v, unsigned *seed)
{
    for (int i = 0; i < DIM; i++) v[i] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
    ss_vec_normalize(v, DIM);
}

typedef struct bf {
    int n;
    int64_t ids[2000];
    float vecs[2000][DIM];
    int live[2000];
} bf_t;

static int cmp_desc(const void *a, const void *b)
{
    float x = ((const float *)a)[0], y = ((const float *)b)[0];
    return (x < y) - (x > y);
}

/* Checks top-k and range search of v against the live rows of b for a few queries. */
static void check_vs_brute(ss_vindex_t *v, const bf_t *b, unsigned *seed)
{
    char err[SS_ERRSZ];
    int live = 0;
    for (int i = 0; i < b->n; i++) live += b->live[i];
    ck_assert_int_eq(ss_vindex_count(v), live);
    for (int q = 0; q < 5; q++) {
        float query[DIM];
        rand_unit(query, seed);
        float (*all)[2] = malloc(sizeof(float[2]) * (size_t)b->n);
        int m = 0;
        for (int i = 0; i < b->n; i++)
            if (b->live[i]) {
                all[m][0] = dot(query, b->vecs[i], DIM);
                all[m++][1] = (float)b->ids[i];
            }
        qsort(all, (size_t)m, sizeof all[0], cmp_desc);
        int64_t ids[10];
        float sc[10];
        int found = 0;
        ck_assert_int_eq(ss_vindex_search(v, query, 10, ids, sc, &found, err, sizeof err), SS_OK);
        ck_assert_int_eq(found, SS_MIN(10, m));
        for (int i = 0; i < found; i++) {
            ck_assert_int_eq(ids[i], (int64_t)all[i][1]);
            ck_assert_float_eq_tol(sc[i], all[i][0], 1e-4);
        }
        int64_t *rid, n;
        float *rsc;
        ck_assert_int_eq(ss_vindex_range(v, query, 0.3f, &rid, &rsc, &n, err, sizeof err), SS_OK);
        int want = 0;
        while (want < m && all[want][0] > 0.3f) want++;
        ck_assert_int_eq(n, want);
        for (int i = 0; i < n; i++) ck_assert_int_eq(rid[i], (int64_t)all[i][1]);
        free(rid);
        free(rsc);
        free(all);
    }
}

static void add_rows(ss_vindex_t *v, bf_t *b, int from, int to, unsigned *seed)
{
    char err[SS_ERRSZ];
    for (int i = from; i < to; i++) {
        b->ids[i] = 1000 + 7 * i;
        rand_unit(b->vecs[i], seed);
        b->live[i] = 1;
    }
    ck_assert_msg(ss_vindex_add(v, b->ids + from, &b->vecs[from][0], to - from, err, sizeof err) == SS_OK, "%s", err);
    b->n = SS_MAX(b->n, to);
}

static void remove_rows(ss_vindex_t *v, bf_t *b, int step)
{
    char err[SS_ERRSZ];
    int64_t del[2000], removed = 0;
    int n = 0;
    for (int i = 0; i < b->n; i += step)
        if (b->live[i]) {
            del[n++] = b->ids[i];
            b->live[i] = 0;
        }
    del[n++] = 424242; /* not present */
    ck_assert_msg(ss_vindex_remove(v, del, n, &removed, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(removed, n - 1);
}

static void run_index(const char *kind, int nlist, int first, int total)
{
    bf_t *b = calloc(1, sizeof *b);
    unsigned seed = 12345;
    ss_vindex_t *v = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_vindex_new(DIM, kind, nlist, &v, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(ss_vindex_dim(v), DIM);
    if (nlist) ss_vindex_set_nprobe(v, nlist); /* every list: exact, comparable to brute force */
    add_rows(v, b, 0, first, &seed);
    check_vs_brute(v, b, &seed);
    add_rows(v, b, first, total, &seed);  /* for ivf this crosses the training point */
    check_vs_brute(v, b, &seed);
    remove_rows(v, b, 3);
    check_vs_brute(v, b, &seed);
    /* replacing a present id: its new vector is found, the old one is gone */
    int r = 1;
    float nv[DIM];
    rand_unit(nv, &seed);
    memcpy(b->vecs[r], nv, sizeof nv);
    ck_assert_int_eq(ss_vindex_add(v, &b->ids[r], nv, 1, err, sizeof err), SS_OK);
    int64_t id;
    float s;
    int found;
    ck_assert_int_eq(ss_vindex_search(v, nv, 1, &id, &s, &found, err, sizeof err), SS_OK);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(id, b->ids[r]);
    ck_assert_float_eq_tol(s, 1.0f, 1e-5);
    check_vs_brute(v, b, &seed);
    /* a snapshot loads into an index with the same contents and answers */
    ss_buf_t snap = SS_BUF_INIT;
    ck_assert_msg(ss_vindex_save(v, &snap, err, sizeof err) == SS_OK, "%s", err);
    ss_vindex_destroy(v);
    ck_assert_msg(ss_vindex_load(snap.data, snap.len, &v, err, sizeof err) == SS_OK, "%s", err);
    check_vs_brute(v, b, &seed);
    remove_rows(v, b, 5); /* and keeps working */
    add_rows(v, b, total, total + 50, &seed);
    check_vs_brute(v, b, &seed);
    ss_vindex_t *bad = NULL;
    ck_assert_int_eq(ss_vindex_load(snap.data, snap.len - 1, &bad, err, sizeof err), SS_ERR_INVALID);
    ck_assert_ptr_null(bad);
    /* an unknown FAISS index type: FAISS throws, we get its message */
    char *fourcc = memmem(snap.data, snap.len, nlist ? "IwFl" : "IxM2", 4);
    ck_assert_ptr_nonnull(fourcc);
    fourcc[0] = 'Q';
    ck_assert_int_eq(ss_vindex_load(snap.data, snap.len, &bad, err, sizeof err), SS_ERR_INTERNAL);
    ck_assert_msg(strstr(err, "faiss:") != NULL, "%s", err);
    ck_assert_ptr_null(bad);
    ss_buf_free(&snap);
    ss_vindex_destroy(v);
    free(b);
}

START_TEST(test_vindex_flat)
{
    run_index("flat", 0, 300, 700);
}
END_TEST

START_TEST(test_vindex_ivf)
{
    run_index("ivf", 4, 100, 600); /* trains at 4*39 = 156 vectors */
}
END_TEST

START_TEST(test_vindex_errors)
{
    ss_vindex_t *v = NULL;
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_vindex_new(0, "flat", 0, &v, err, sizeof err), SS_ERR_INVALID);
    ck_assert_int_eq(ss_vindex_new(8, "hnsw", 0, &v, err, sizeof err), SS_ERR_INVALID);
    ck_assert_msg(strstr(err, "hnsw"), "%s", err);
    ck_assert_int_eq(ss_vindex_new(8, "ivf", 0, &v, err, sizeof err), SS_ERR_INVALID);
    ck_assert_int_eq(ss_vindex_new(8, NULL, 0, &v, err, sizeof err), SS_OK);
    float x[8] = {1};
    int64_t id = -5, ids[3];
    float sc[3];
    int found = 1;
    ck_assert_int_eq(ss_vindex_add(v, &id, x, 1, err, sizeof err), SS_ERR_INVALID);
    ck_assert_int_eq(ss_vindex_search(v, x, 3, ids, sc, &found, err, sizeof err), SS_OK);
    ck_assert_int_eq(found, 0); /* empty index */
    id = 9;
    ck_assert_int_eq(ss_vindex_add(v, &id, x, 1, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_vindex_search(v, x, 3, ids, sc, &found, err, sizeof err), SS_OK);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(ids[0], 9);
    ss_vindex_destroy(v);
    ss_vindex_destroy(NULL);
}
END_TEST

Suite *check_embed_suite(void)
{
    Suite *s = suite_create("embed");
    TCase *tc = tcase_create("embed");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_wink_similarity);
    tcase_add_test(tc, test_wink_unknown_words);
    tcase_add_test(tc, test_embedder_errors);
    tcase_add_test(tc, test_vectors_found_beside_installation);
    tcase_add_test(tc, test_model_embedder_local);
    tcase_add_test(tc, test_vindex_flat);
    tcase_add_test(tc, test_vindex_ivf);
    tcase_add_test(tc, test_vindex_errors);
    suite_add_tcase(s, tc);
    return s;
}
