/*
 * check_base.c — tests of ss_base (buffers, hashing) and ss_zset (rows, encoding,
 * consolidation).
 */
#include "ss_base.h"
#include "ss_zset.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static ss_row_t *mkrow(int64_t a, const char *b)
{
    ss_row_t *r = ss_row_new(2);
    ss_value_t x = ss_val_int(a), y = b ? ss_val_text_ref(b, strlen(b)) : ss_val_null();
    ss_row_set(r, 0, &x);
    ss_row_set(r, 1, &y);
    return r;
}

START_TEST(test_buf_json)
{
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_buf_put_json_str(&b, "a\"b\n\x01", 5), SS_OK);
    ck_assert_str_eq(ss_buf_cstr(&b), "\"a\\\"b\\n\\u0001\"");
    ss_buf_free(&b);
}
END_TEST

START_TEST(test_hash_stable)
{
    /* persistent cache keys depend on this value never changing */
    ck_assert_uint_eq(ss_hash64("semstream", 9, 0), ss_hash64("semstream", 9, 0));
    ck_assert_uint_ne(ss_hash64("semstream", 9, 0), ss_hash64("semstreaM", 9, 0));
    char hex[33];
    ss_hash_hex128("x", 1, hex);
    ck_assert_int_eq((int)strlen(hex), 32);
}
END_TEST

START_TEST(test_row_roundtrip)
{
    ss_row_t *r = mkrow(-42, "h\0llo");
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_row_encode(r, &b), SS_OK);
    ss_row_t *d = NULL;
    ck_assert_int_eq(ss_row_decode(b.data, b.len, &d), SS_OK);
    ck_assert_int_eq(ss_row_cmp(r, d), 0);
    /* every truncation is rejected, never read past the end */
    for (size_t n = 0; n < b.len; n++) {
        ss_row_t *t = NULL;
        ck_assert_int_eq(ss_row_decode(b.data, n, &t), SS_ERR_INVALID);
        ck_assert_ptr_null(t);
    }
    ss_row_free(r);
    ss_row_free(d);
    ss_buf_free(&b);
}
END_TEST

START_TEST(test_zset_consolidate)
{
    ss_zset_t z;
    ss_zset_init(&z);
    ss_zset_add(&z, mkrow(1, "a"), 1);
    ss_zset_add(&z, mkrow(2, "b"), 1);
    ss_zset_add(&z, mkrow(1, "a"), -1); /* insert then delete vanishes */
    ss_zset_add(&z, mkrow(2, "b"), 2);
    ss_zset_add(&z, mkrow(3, NULL), -1);
    ss_zset_consolidate(&z);
    ck_assert_uint_eq(z.n, 2);
    ck_assert_int_eq(z.e[0].row->v[0].u.i, 2);
    ck_assert_int_eq(z.e[0].w, 3);
    ck_assert_int_eq(z.e[1].w, -1);
    ss_zset_t y;
    ss_zset_init(&y);
    ss_zset_add(&y, mkrow(3, NULL), -1);
    ss_zset_add(&y, mkrow(2, "b"), 3);
    ck_assert(ss_zset_equal(&z, &y));
    ss_zset_destroy(&z);
    ss_zset_destroy(&y);
}
END_TEST

Suite *check_base_suite(void)
{
    Suite *s = suite_create("base");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_buf_json);
    tcase_add_test(tc, test_hash_stable);
    tcase_add_test(tc, test_row_roundtrip);
    tcase_add_test(tc, test_zset_consolidate);
    suite_add_tcase(s, tc);
    return s;
}
