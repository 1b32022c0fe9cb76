/*
 * check_llm.c — tests of the inference engine (gpu/): GGUF validation, the golden
 * greedy output of stories260K, tokenizer round trips, batched == single logits,
 * prefix-cached == uncached, the request API, and tiny synthetic qwen2/gpt2 models
 * written by gpu/gguf_write.c in f32/f16/bf16/q8_0.
 */
#include "llm_internal.h"
#include "ss_gguf.h"
#include "ss_llm.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_path[1024];

static ss_llm_t *open_stories(const ss_llm_opts_t *o)
{
    tu_model_path("stories260K.gguf", g_path, sizeof g_path);
    char err[SS_ERRSZ] = "";
    ss_llm_t *m = NULL;
    ss_err_t rc = ss_llm_open(g_path, o, &m, err, sizeof err);
    ck_assert_msg(rc == SS_OK, "open: %s", err);
    return m;
}

/* ---------------- golden ---------------- */

static int read_golden(int *out, int cap)
{
    char p[1024];
    char *txt = tu_read_file(tu_model_path("stories260K.greedy200.tokens", p, sizeof p), NULL);
    ck_assert_ptr_nonnull(txt);
    int n = 0;
    for (char *s = txt; *s && n < cap;) {
        if ((*s >= '0' && *s <= '9')) {
            out[n++] = (int)strtol(s, &s, 10);
        } else {
            s++;
        }
    }
    free(txt);
    return n;
}

START_TEST(test_golden_greedy)
{
    ss_llm_opts_t o = {.threads = 2};
    ss_llm_t *m = open_stories(&o);
    const ss_llm_config_t *c = ss_llm_config(m);
    ck_assert_str_eq(c->arch, "llama");
    ck_assert_int_eq(c->n_layers, 5);
    ck_assert_int_eq(c->dim, 64);
    ck_assert_int_eq(c->n_kv_heads, 4);
    ck_assert_int_eq(c->vocab_size, 512);
    int gold[256], out[256];
    int ng = read_golden(gold, 256);
    ck_assert_int_eq(ng, 200);
    char err[SS_ERRSZ] = "";
    int bos = c->bos;
    int n = ss_llm_greedy(m, &bos, 1, ng, out, err, sizeof err);
    ck_assert_msg(n == ng, "generated %d: %s", n, err);
    for (int i = 0; i < ng; i++)
        ck_assert_msg(out[i] == gold[i], "token %d: got %d, want %d", i, out[i], gold[i]);
    ss_llm_close(m);
}
END_TEST

Suite *check_llm_suite(void)
{
    Suite *s = suite_create("llm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_golden_greedy);
    suite_add_tcase(s, tc);
    return s;
}
