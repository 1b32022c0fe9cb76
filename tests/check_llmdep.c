/*
 * check_llmdep.c — unit tests of the bookkeeping of LLM_GENERATE MAINTAIN = 'dependency'
 * (operators/llm_dep.c, src/base/infer.c): the dependency record's encoding, the chunk lists'
 * encoding, and ss_dep_keep's decision of how much of an answer survives a change, table-driven
 * (changed, gone, moved and entered chunks against thresholds).
 */
#include "ss_sem.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A record of 3 sentences over 3 chunks (instr, doc:a, doc:b), 7 tokens. */
static int g_tok[] = {11, 12, 13, 14, 15, 16, 17};
static int g_end[] = {2, 5, 7};
static float g_mass[] = {
    /*        instr  a     b */
    /* s0 */ 0.60f, 0.01f, 0.02f,
    /* s1 */ 0.30f, 0.40f, 0.05f,
    /* s2 */ 0.20f, 0.10f, 0.30f,
};

static ss_infer_dep_t rec(void) { return (ss_infer_dep_t){7, g_tok, 3, g_end, 3, g_mass}; }

/* Chunks from "label=text" items. */
static void chunks(ss_dep_chunks_t *c, const char *const *items, int n)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(items[i], '=');
        char label[32];
        snprintf(label, sizeof label, "%.*s", (int)(eq - items[i]), items[i]);
        ck_assert_int_eq(ss_dep_chunks_add(c, label, eq + 1, 0, strlen(eq + 1)), SS_OK);
    }
}

START_TEST(test_dep_encode)
{
    ss_infer_dep_t d = rec(), e;
    unsigned char *blob = NULL;
    int len = 0;
    ck_assert_int_eq(ss_infer_dep_encode(&d, &blob, &len), SS_OK);
    ck_assert_int_eq(len, 16 + 4 * (7 + 3 + 9));
    ck_assert_int_eq(ss_infer_dep_decode(blob, len, &e), SS_OK);
    ck_assert_int_eq(e.ntok, 7);
    ck_assert_int_eq(e.nsent, 3);
    ck_assert_int_eq(e.nchunk, 3);
    ck_assert(!memcmp(e.tok, g_tok, sizeof g_tok));
    ck_assert(!memcmp(e.sent_end, g_end, sizeof g_end));
    ck_assert(!memcmp(e.mass, g_mass, sizeof g_mass));
    ss_infer_dep_free(&e);
    /* truncated, bad magic, sentence ends out of order: refused */
    ck_assert_int_eq(ss_infer_dep_decode(blob, len - 4, &e), SS_ERR_INVALID);
    blob[0] = 'X';
    ck_assert_int_eq(ss_infer_dep_decode(blob, len, &e), SS_ERR_INVALID);
    blob[0] = 'S';
    int bad = 9;
    memcpy(blob + 16 + 4 * 7 + 4, &bad, 4);
    ck_assert_int_eq(ss_infer_dep_decode(blob, len, &e), SS_ERR_INVALID);
    ck_assert_int_eq(ss_infer_dep_decode(NULL, 0, &e), SS_ERR_INVALID);
    free(blob);
    /* a result copy carries the record */
    ss_infer_res_t r = {0}, r2;
    ck_assert_int_eq(ss_infer_dep_encode(&d, &r.dep, &r.dep_len), SS_OK);
    ck_assert_int_eq(ss_infer_res_copy(&r2, &r), SS_OK);
    ck_assert_int_eq(r2.dep_len, r.dep_len);
    ck_assert(!memcmp(r2.dep, r.dep, (size_t)r.dep_len));
    ss_infer_res_clear(&r);
    ss_infer_res_clear(&r2);
}
END_TEST

START_TEST(test_chunks_encode)
{
    static const char *const it[] = {"instr=Answer.", "doc:\"a\"=<doc>\nA</doc>\n", "self=### Turn\nq"};
    ss_dep_chunks_t c, d;
    chunks(&c, it, 3);
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_dep_chunks_encode(&c, &b), SS_OK);
    ck_assert_int_eq(ss_dep_chunks_decode(b.data, (int)b.len, &d), SS_OK);
    ck_assert_int_eq(d.n, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert(d.id[i] == c.id[i]);
        ck_assert(d.hash[i] == c.hash[i]);
        ck_assert_str_eq(d.label[i], c.label[i]);
    }
    ss_dep_chunks_free(&d);
    ck_assert_int_eq(ss_dep_chunks_decode(b.data, (int)b.len - 1, &d), SS_ERR_INVALID);
    ck_assert_int_eq(ss_dep_chunks_decode(NULL, 0, &d), SS_OK); /* no chunks */
    ck_assert_int_eq(d.n, 0);
    ss_dep_chunks_free(&d);
    ss_buf_free(&b);
    ss_dep_chunks_free(&c);
    ss_dep_chunks_free(NULL);
}
END_TEST

/* The old chunks are instr=I, doc:a=A, doc:b=B; each case gives the new ones, tau and the
 * sentences kept (and the deciding chunk). */
static const struct {
    const char *now[4];
    int n;
    double tau;
    int keep, cause;
} cases[] = {
    {{"instr=I", "doc:a=A", "doc:b=B"}, 3, 0.0, 3, -1},        /* nothing changed: keep all, even at 0 */
    {{"instr=I", "doc:a=A2", "doc:b=B"}, 3, 0.0, 0, 1},        /* tau 0: any change regenerates all */
    {{"instr=I", "doc:a=A2", "doc:b=B"}, 3, 0.3, 1, 1},        /* a: s1 is the first >= 0.3 */
    {{"instr=I", "doc:a=A2", "doc:b=B"}, 3, 0.4, 1, 1},        /* >= is inclusive */
    {{"instr=I", "doc:a=A2", "doc:b=B"}, 3, 0.41, 3, -1},      /* no sentence reaches it: kept */
    {{"instr=I", "doc:a=A", "doc:b=B2"}, 3, 0.25, 2, 2},       /* b: only s2 */
    {{"instr=I", "doc:a=A2", "doc:b=B2"}, 3, 0.25, 1, 1},      /* both: the earliest */
    {{"instr=I", "doc:b=B"}, 2, 0.3, 1, 1},                    /* a deleted: like a change */
    {{"instr=I", "doc:b=B"}, 2, 0.5, 3, -1},                   /* deleted, never attended: kept */
    {{"instr=I", "doc:a=A", "doc:b=B", "doc:c=C"}, 4, 0.9, 0, 6}, /* c entered: all (cause 3 + 3) */
    {{"instr=I2", "doc:a=A", "doc:b=B"}, 3, 0.5, 0, 0},        /* the instruction mattered from s0 */
    {{"instr=I", "doc:b=B", "doc:a=A"}, 3, 0.35, 1, 1},        /* a and b swapped: both moved */
    {{"instr=I", "doc:b=B", "doc:a=A"}, 3, 0.5, 3, -1},        /* moved, but below tau */
};

START_TEST(test_keep_table)
{
    static const char *const old_items[] = {"instr=I", "doc:a=A", "doc:b=B"};
    ss_infer_dep_t d = rec();
    ss_dep_chunks_t old, now;
    chunks(&old, old_items, 3);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        chunks(&now, cases[i].now, cases[i].n);
        int cause = -2;
        int keep = ss_dep_keep(&d, &old, &now, cases[i].tau, &cause);
        ck_assert_msg(keep == cases[i].keep && cause == cases[i].cause, "case %zu: keep %d cause %d, expected %d %d",
                      i, keep, cause, cases[i].keep, cases[i].cause);
        ss_dep_chunks_free(&now);
    }
    /* a record measured on other chunks is not trusted */
    ss_infer_dep_t d2 = d;
    d2.nchunk = 2;
    chunks(&now, old_items, 3);
    ck_assert_int_eq(ss_dep_keep(&d2, &old, &now, 0.5, NULL), 0);
    ss_dep_chunks_free(&now);
    ss_dep_chunks_free(&old);
}
END_TEST

START_TEST(test_remap)
{
    static const char *const old_items[] = {"instr=I", "doc:a=A", "doc:b=B"};
    static const char *const new_items[] = {"instr=I", "doc:b=B", "turn:3=T"};
    ss_infer_dep_t d = rec(), e;
    ss_dep_chunks_t old, now;
    chunks(&old, old_items, 3);
    chunks(&now, new_items, 3);
    ck_assert_int_eq(ss_dep_remap(&d, &old, &now, &e), SS_OK);
    ck_assert_int_eq(e.nchunk, 3);
    ck_assert_int_eq(e.nsent, 3);
    ck_assert(!memcmp(e.tok, g_tok, sizeof g_tok));
    for (int s = 0; s < 3; s++) {
        ck_assert(e.mass[s * 3 + 0] == g_mass[s * 3 + 0]); /* instr */
        ck_assert(e.mass[s * 3 + 1] == g_mass[s * 3 + 2]); /* b moved to index 1 */
        ck_assert(e.mass[s * 3 + 2] == 0);                 /* unknown label */
    }
    ss_infer_dep_free(&e);
    ss_dep_chunks_free(&old);
    ss_dep_chunks_free(&now);
}
END_TEST

Suite *check_llmdep_suite(void)
{
    Suite *s = suite_create("llmdep");
    TCase *tc = tcase_create("bookkeeping");
    tcase_add_test(tc, test_dep_encode);
    tcase_add_test(tc, test_chunks_encode);
    tcase_add_test(tc, test_keep_table);
    tcase_add_test(tc, test_remap);
    suite_add_tcase(s, tc);
    return s;
}
