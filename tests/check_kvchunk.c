/*
 * check_kvchunk.c — unit tests of the chunk KV cache of KV_REUSE = 'chunks' (gpu/kvchunk.c):
 * the byte bound holds after every insertion, the least recently used entry goes first (a hit
 * makes an entry the most recent), an entry larger than the bound is refused without evicting
 * anything, hits are verified against the stored tokens (a key collision is a miss), dropped
 * entries give their bytes back, and the counters add up.
 */
#include "llm_internal.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* Inserts a chunk of n tokens (value v) with floats KV values (filled with v). */
static kvc_entry_t *put(kvchunk_t *c, uint64_t key, int v, int n, size_t floats)
{
    int tok[64];
    for (int i = 0; i < n; i++)
        tok[i] = v + i;
    kvc_entry_t *e = kvc_put(c, key, tok, n, floats);
    if (e)
        for (size_t i = 0; i < floats; i++)
            e->kv[i] = (float)v;
    return e;
}

static kvc_entry_t *get(kvchunk_t *c, uint64_t key, int v, int n)
{
    int tok[64];
    for (int i = 0; i < n; i++)
        tok[i] = v + i;
    return kvc_get(c, key, tok, n);
}

START_TEST(test_bound_and_lru)
{
    size_t one = kvc_entry_bytes(8, 1000);
    kvchunk_t c;
    kvc_init(&c, 3 * one + one / 2); /* room for three entries */
    for (int k = 1; k <= 3; k++)
        ck_assert_ptr_nonnull(put(&c, (uint64_t)k, 10 * k, 8, 1000));
    ck_assert_int_eq(c.n, 3);
    ck_assert_uint_eq(c.bytes, 3 * one);
    ck_assert_ptr_nonnull(get(&c, 1, 10, 8)); /* 1 becomes the most recent: 2 is the oldest */
    ck_assert_ptr_nonnull(put(&c, 4, 40, 8, 1000));
    ck_assert_int_eq(c.n, 3);
    ck_assert_uint_le(c.bytes, c.cap_bytes);
    ck_assert_ptr_null(get(&c, 2, 20, 8));
    kvc_entry_t *e1 = get(&c, 1, 10, 8), *e3 = get(&c, 3, 30, 8), *e4 = get(&c, 4, 40, 8);
    ck_assert_ptr_nonnull(e1);
    ck_assert_ptr_nonnull(e3);
    ck_assert_ptr_nonnull(e4);
    ck_assert_float_eq(e1->kv[999], 10.f);
    ck_assert_float_eq(e4->kv[0], 40.f);
    ck_assert_int_eq(c.evictions, 1);
    /* a bigger entry evicts as many of the oldest (1, then 3) as it needs */
    ck_assert_ptr_nonnull(put(&c, 5, 50, 8, 2000));
    ck_assert_uint_le(c.bytes, c.cap_bytes);
    ck_assert_ptr_null(get(&c, 1, 10, 8));
    ck_assert_ptr_null(get(&c, 3, 30, 8));
    ck_assert_ptr_nonnull(get(&c, 4, 40, 8));
    ck_assert_ptr_nonnull(get(&c, 5, 50, 8));
    ck_assert_int_eq(c.evictions, 3);
    ck_assert_int_eq(c.inserts, 5);
    ck_assert_int_eq(c.n, 2);
    ck_assert_uint_eq(c.bytes, kvc_entry_bytes(8, 1000) + kvc_entry_bytes(8, 2000));
    kvc_free(&c);
}
END_TEST

START_TEST(test_too_big_and_verify)
{
    kvchunk_t c;
    kvc_init(&c, kvc_entry_bytes(8, 1000) * 2);
    ck_assert_ptr_nonnull(put(&c, 7, 70, 8, 1000));
    /* larger than the whole bound: refused, and nothing was evicted for it */
    ck_assert_ptr_null(put(&c, 8, 80, 8, 5000));
    ck_assert_int_eq(c.n, 1);
    ck_assert_int_eq(c.evictions, 0);
    /* the same key with other tokens (a collision) or another length is a miss */
    ck_assert_ptr_null(get(&c, 7, 71, 8));
    ck_assert_ptr_null(get(&c, 7, 70, 7));
    ck_assert_ptr_nonnull(get(&c, 7, 70, 8));
    ck_assert_int_eq(c.hits, 1);
    ck_assert_int_eq(c.misses, 2);
    /* two entries under one key (a collision) live side by side */
    ck_assert_ptr_nonnull(put(&c, 7, 90, 8, 1000));
    ck_assert_ptr_nonnull(get(&c, 7, 70, 8));
    ck_assert_ptr_nonnull(get(&c, 7, 90, 8));
    kvc_free(&c);
}
END_TEST

START_TEST(test_drop_clear_many)
{
    kvchunk_t c;
    size_t one = kvc_entry_bytes(4, 100);
    kvc_init(&c, 500 * one + 10);
    kvc_entry_t *e = put(&c, 1, 1, 4, 100);
    ck_assert_ptr_nonnull(e);
    kvc_drop(&c, e); /* could not be filled: gone, bytes back, not an eviction */
    ck_assert_int_eq(c.n, 0);
    ck_assert_uint_eq(c.bytes, 0);
    ck_assert_int_eq(c.evictions, 0);
    ck_assert_ptr_null(get(&c, 1, 1, 4));
    /* many entries: the table grows, every one stays reachable, the bound holds */
    for (int k = 0; k < 2000; k++)
        ck_assert_ptr_nonnull(put(&c, (uint64_t)k * 0x9e3779b97f4a7c15ull, k, 4, 100));
    ck_assert_uint_le(c.bytes, c.cap_bytes);
    ck_assert_int_eq(c.n, 500);
    ck_assert_int_eq(c.evictions, 1500);
    for (int k = 2000 - c.n; k < 2000; k++)
        ck_assert_ptr_nonnull(get(&c, (uint64_t)k * 0x9e3779b97f4a7c15ull, k, 4));
    ck_assert_ptr_null(get(&c, 0, 0, 4));
    kvc_clear(&c);
    ck_assert_int_eq(c.n, 0);
    ck_assert_uint_eq(c.bytes, 0);
    ck_assert_ptr_null(get(&c, (uint64_t)1999 * 0x9e3779b97f4a7c15ull, 1999, 4));
    ck_assert_ptr_nonnull(put(&c, 3, 3, 4, 100)); /* usable after a clear */
    kvc_free(&c);
}
END_TEST

Suite *check_kvchunk_suite(void)
{
    Suite *s = suite_create("kvchunk");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_bound_and_lru);
    tcase_add_test(tc, test_too_big_and_verify);
    tcase_add_test(tc, test_drop_clear_many);
    suite_add_tcase(s, tc);
    return s;
}
