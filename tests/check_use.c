/*
 * check_use.c — tests of the "use" sentence encoder (runtime/embed_use.c): opening errors on
 * missing and corrupt files, the tokenizer on known inputs, unit-norm and batch-independent
 * embeddings that put paraphrases closer than unrelated sentences, the embedder kind, and,
 * when SS_USE_REF names the output of tests/use/reference.mjs (tests/use/run.sh does), the
 * differential comparison with the official TF.js implementation on tests/use/sentences.json:
 * the same token ids and embeddings with cosine >= 0.9999. Needs data/use.bin
 * (scripts/setup-embeddings.sh) and says so when it is missing.
 */
#include "ss_embed.h"
#include "ss_json.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *use_path(void)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/data/use.bin", tu_source_dir());
    return buf;
}

#define NEED_USE()                                                                                   \
    do {                                                                                             \
        if (!tu_exists(use_path())) {                                                                \
            fprintf(stderr, "skipped: %s missing (run scripts/setup-embeddings.sh)\n", use_path()); \
            return;                                                                                  \
        }                                                                                            \
    } while (0)

static ss_use_t *open_use(void)
{
    ss_use_t *u = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_use_open(use_path(), &u, err, sizeof err) == SS_OK, "%s", err);
    return u;
}

static double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / (sqrt(aa) * sqrt(bb) + 1e-30);
}

START_TEST(test_open_errors)
{
    ss_use_t *u = (ss_use_t *)1;
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_use_open("/nonexistent/use.bin", &u, err, sizeof err), SS_ERR_IO);
    ck_assert_ptr_null(u);
    ck_assert_msg(strstr(err, "/nonexistent/use.bin") && strstr(err, "setup-embeddings"), "%s", err);
    char path[] = "/tmp/ss-use-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "SSWVEC01 not an encoder at all, just bytes", 42), 42);
    close(fd);
    ck_assert_int_eq(ss_use_open(path, &u, err, sizeof err), SS_ERR_INVALID);
    ck_assert_msg(strstr(err, "SSUSE001"), "%s", err);
    if (tu_exists(use_path())) { /* the real file cut short: its tables point past the end */
        size_t len;
        char *b = tu_read_file(use_path(), &len);
        ck_assert_ptr_nonnull(b);
        FILE *f = fopen(path, "wb");
        ck_assert_int_eq(fwrite(b, 1, len / 2, f), len / 2);
        fclose(f);
        free(b);
        ck_assert_int_ne(ss_use_open(path, &u, err, sizeof err), SS_OK);
        ck_assert_ptr_null(u);
    }
    unlink(path);
    ss_use_close(NULL);
}
END_TEST

/* Token ids the reference tokenizer (@tensorflow-models/universal-sentence-encoder) gives. */
START_TEST(test_tokenize_known)
{
    NEED_USE();
    static const struct {
        const char *text;
        int n;
        int32_t ids[8];
    } cases[] = {
        {"Hello world.", 4, {341, 4125, 311, 6}},
        {"", 0, {0}},
        {"a", 1, {11}},
        {"How do I reset my password?", 8, {728, 64, 16, 137, 1383, 69, 5969, 54}},
    };
    ss_use_t *u = open_use();
    char err[SS_ERRSZ];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t ids[16];
        int n = -1;
        ck_assert_int_eq(ss_use_tokenize(u, cases[c].text, ids, 16, &n, err, sizeof err), SS_OK);
        ck_assert_msg(n == cases[c].n, "\"%s\": %d tokens, want %d", cases[c].text, n, cases[c].n);
        for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], cases[c].ids[i]);
    }
    /* at most max ids, the first ones */
    int32_t two[2];
    int n = 0;
    ck_assert_int_eq(ss_use_tokenize(u, "Hello world.", two, 2, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(two[0], 341);
    ck_assert_int_eq(two[1], 4125);
    ss_use_close(u);
}
END_TEST

START_TEST(test_embed_properties)
{
    NEED_USE();
    ss_use_t *u = open_use();
    int d = ss_use_dim(u);
    ck_assert_int_eq(d, 512);
    const char *t[] = {"The cat sat on the mat.", "A kitten was sleeping on the rug.",
                       "Stock markets fell sharply after the central bank raised interest rates.",
                       "Shares dropped as the bank increased rates.", ""};
    enum { N = 5 };
    float *all = malloc(sizeof(float) * N * 512), *one = malloc(sizeof(float) * 512);
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_use_embed(u, t, N, all, err, sizeof err), SS_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_double_eq_tol(cosine(all + i * 512, all + i * 512, d), 1.0, 1e-5);
        double nn = 0;
        for (int k = 0; k < d; k++) nn += (double)all[i * 512 + k] * all[i * 512 + k];
        ck_assert_double_eq_tol(nn, 1.0, 1e-4);
        /* a text's embedding does not depend on the batch it came in */
        ck_assert_int_eq(ss_use_embed(u, &t[i], 1, one, err, sizeof err), SS_OK);
        ck_assert_msg(!memcmp(one, all + i * 512, sizeof(float) * 512), "text %d differs alone", i);
    }
    double cat = cosine(all, all + 512, d), fin = cosine(all + 1024, all + 1536, d);
    double x1 = cosine(all, all + 1024, d), x2 = cosine(all + 512, all + 1536, d);
    ck_assert_msg(cat > x1 && cat > x2 && fin > x1 && fin > x2, "paraphrases %.3f %.3f, unrelated %.3f %.3f", cat,
                  fin, x1, x2);
    free(all);
    free(one);
    ss_use_close(u);
}
END_TEST

START_TEST(test_embedder_kind)
{
    NEED_USE();
    ss_embed_opts_t o = {.kind = "use", .vec_path = use_path()};
    ss_embedder_t *e = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_embedder_open(&o, &e, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_str_eq(e->kind, "use");
    ck_assert_int_eq(e->dim, 512);
    ck_assert_msg(strstr(e->desc, "Universal Sentence Encoder") && strstr(e->desc, "use.bin"), "%s", e->desc);
    const char *t[] = {"RouterX keeps dropping Wi-Fi", "My wifi keeps disconnecting"};
    float v[1024];
    ck_assert_int_eq(ss_embedder_embed(e, t, 2, v, err, sizeof err), SS_OK);
    ck_assert(cosine(v, v + 512, 512) > 0.3);
    ss_embedder_destroy(e);
    o.vec_path = "/nonexistent/use.bin";
    ck_assert_int_eq(ss_embedder_open(&o, &e, err, sizeof err), SS_ERR_IO);
    char desc[512];
    int rc = ss_embed_describe("use", NULL, desc, sizeof desc);
    ck_assert_msg(rc == SS_OK || rc == SS_ERR_NOTFOUND, "%d", rc);
    ck_assert_msg(!strncmp(desc, "use: ", 5), "%s", desc);
}
END_TEST

/* Ours against the official TF.js implementation (tests/use/run.sh sets SS_USE_REF). */
START_TEST(test_reference)
{
    NEED_USE();
    const char *ref = getenv("SS_USE_REF");
    if (!ref || !*ref) {
        fprintf(stderr, "skipped: SS_USE_REF unset (tests/use/run.sh runs the reference)\n");
        return;
    }
    char spath[4096], err[SS_ERRSZ];
    snprintf(spath, sizeof spath, "%s/tests/use/sentences.json", tu_source_dir());
    size_t sl, rl;
    char *stext = tu_read_file(spath, &sl), *rtext = tu_read_file(ref, &rl);
    ck_assert_msg(stext && rtext, "cannot read %s or %s", spath, ref);
    ss_json_doc_t *sd, *rd;
    ck_assert_msg(ss_json_parse(stext, sl, 0, &sd, NULL, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(ss_json_parse(rtext, rl, 0, &rd, NULL, err, sizeof err) == SS_OK, "%s", err);
    const ss_json_t *s = ss_json_root(sd), *toks = ss_json_get(ss_json_root(rd), "tokens"),
                    *embs = ss_json_get(ss_json_root(rd), "embeddings");
    ck_assert(s->t == SS_JSON_ARRAY && toks && embs && toks->u.arr.n == s->u.arr.n && embs->u.arr.n == s->u.arr.n);
    int n = (int)s->u.arr.n;
    const char **texts = calloc((size_t)n, sizeof *texts);
    for (int i = 0; i < n; i++) texts[i] = s->u.arr.items[i].u.str.s;
    ss_use_t *u = open_use();
    float *out = malloc(sizeof(float) * 512 * (size_t)n);
    ck_assert_int_eq(ss_use_embed(u, texts, n, out, err, sizeof err), SS_OK);
    double worst = 1, maxdiff = 0;
    for (int i = 0; i < n; i++) {
        int32_t ids[128];
        int nt;
        ck_assert_int_eq(ss_use_tokenize(u, texts[i], ids, 128, &nt, err, sizeof err), SS_OK);
        const ss_json_t *rt = &toks->u.arr.items[i];
        ck_assert_msg(nt == (int)rt->u.arr.n || (rt->u.arr.n > 128 && nt == 128), "text %d: %d tokens, reference %zu",
                      i, nt, rt->u.arr.n);
        for (int k = 0; k < nt; k++)
            ck_assert_msg(ids[k] == rt->u.arr.items[k].u.i, "text %d token %d: %d, reference %lld", i, k, ids[k],
                          (long long)rt->u.arr.items[k].u.i);
        const ss_json_t *re = &embs->u.arr.items[i];
        ck_assert_int_eq((int)re->u.arr.n, 512);
        float r[512];
        for (int k = 0; k < 512; k++) {
            const ss_json_t *x = &re->u.arr.items[k];
            r[k] = (float)(x->t == SS_JSON_INT ? (double)x->u.i : x->u.r);
            double dd = fabs(r[k] - out[(size_t)i * 512 + k]);
            if (dd > maxdiff) maxdiff = dd;
        }
        double c = cosine(r, out + (size_t)i * 512, 512);
        if (c < worst) worst = c;
        ck_assert_msg(c >= 0.9999, "text %d (\"%.40s\"): cosine %.6f with the reference", i, texts[i], c);
    }
    printf("check_use: %d texts: tokens identical, worst cosine %.7f, max |diff| %.2e\n", n, worst, maxdiff);
    ck_assert(maxdiff < 1e-3);
    free(out);
    free(texts);
    ss_use_close(u);
    ss_json_free(sd);
    ss_json_free(rd);
    free(stext);
    free(rtext);
}
END_TEST

Suite *check_use_suite(void)
{
    Suite *s = suite_create("use");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_tokenize_known);
    tcase_add_test(tc, test_embed_properties);
    tcase_add_test(tc, test_embedder_kind);
    tcase_add_test(tc, test_reference);
    suite_add_tcase(s, tc);
    return s;
}
