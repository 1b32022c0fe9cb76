/*
 * check_json.c — unit tests of ss_json: valid documents, errors with byte
 * positions, string escapes and surrogate pairs, integer/real numbers, the
 * nesting limit, the UTF-8 safe string writer, random garbage, and the
 * flat-object scanner against the full parser.
 */
#include "ss_json.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ss_json_doc_t *parse_ok(const char *s)
{
    ss_json_doc_t *d = NULL;
    char err[256] = "";
    int rc = ss_json_parse(s, strlen(s), 0, &d, NULL, err, sizeof err);
    ck_assert_msg(rc == SS_OK, "'%s' failed: %s", s, err);
    ck_assert_ptr_nonnull(d);
    return d;
}

START_TEST(test_valid_dom)
{
    ss_json_doc_t *d = parse_ok(" {\"id\": 7, \"name\":\"x\\ty\", \"ok\":true, \"no\":false,"
                                " \"n\":null, \"r\":-1.5e2, \"a\":[1,[2,{}],[]], \"id\":8 } ");
    const ss_json_t *r = ss_json_root(d);
    ck_assert_int_eq(r->t, SS_JSON_OBJECT);
    ck_assert_uint_eq(r->u.obj.n, 8);
    ck_assert_int_eq(ss_json_get(r, "id")->u.i, 8); /* last duplicate wins */
    ck_assert_str_eq(ss_json_str(ss_json_get(r, "name")), "x\ty");
    ck_assert_int_eq(ss_json_get(r, "ok")->u.b, 1);
    ck_assert_int_eq(ss_json_get(r, "no")->t, SS_JSON_BOOL);
    ck_assert_int_eq(ss_json_get(r, "n")->t, SS_JSON_NULL);
    ck_assert_int_eq(ss_json_get(r, "r")->t, SS_JSON_REAL);
    ck_assert(ss_json_get(r, "r")->u.r == -150.0);
    ck_assert_ptr_null(ss_json_get(r, "ID"));
    ck_assert_int_eq(ss_json_get_ci(r, "ID")->u.i, 8);
    const ss_json_t *a = ss_json_get(r, "a");
    ck_assert_uint_eq(a->u.arr.n, 3);
    ck_assert_int_eq(a->u.arr.items[1].u.arr.items[1].t, SS_JSON_OBJECT);
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_json_write(a, &b), SS_OK);
    ck_assert_str_eq(ss_buf_cstr(&b), "[1,[2,{}],[]]");
    ss_buf_free(&b);
    ss_json_free(d);
    ss_json_free(NULL);
}
END_TEST

START_TEST(test_scalars_and_numbers)
{
    struct { const char *in; ss_json_type_t t; int64_t i; double r; } cases[] = {
        {"0", SS_JSON_INT, 0, 0},
        {"-0", SS_JSON_INT, 0, 0},
        {"9223372036854775807", SS_JSON_INT, INT64_MAX, 0},
        {"-9223372036854775808", SS_JSON_INT, INT64_MIN, 0},
        {"9223372036854775808", SS_JSON_REAL, 0, 9223372036854775808.0},
        {"1.0", SS_JSON_REAL, 0, 1.0},
        {"1e3", SS_JSON_REAL, 0, 1000.0},
        {"2E-1", SS_JSON_REAL, 0, 0.2},
        {"  42  ", SS_JSON_INT, 42, 0},
        {"\"s\"", SS_JSON_STRING, 0, 0},
        {"null", SS_JSON_NULL, 0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ss_json_doc_t *d = parse_ok(cases[k].in);
        const ss_json_t *v = ss_json_root(d);
        ck_assert_msg(v->t == cases[k].t, "%s: type %d", cases[k].in, v->t);
        if (v->t == SS_JSON_INT)
            ck_assert_int_eq(v->u.i, cases[k].i);
        if (v->t == SS_JSON_REAL)
            ck_assert_msg(v->u.r == cases[k].r, "%s: %g", cases[k].in, v->u.r);
        ss_json_free(d);
    }
}
END_TEST

START_TEST(test_errors_with_positions)
{
    struct { const char *in; size_t pos; const char *frag; } cases[] = {
        {"", 0, "end of input"},
        {"{", 1, "end of input"},
        {"{\"a\":1,}", 7, "string key"},
        {"{\"a\" 1}", 5, "':'"},
        {"[1 2]", 3, "',' or ']'"},
        {"[1,2", 4, "end of input"},
        {"tru", 0, "JSON value"},
        {"nul x", 0, "JSON value"},
        {"01", 1, "after the JSON value"},
        {"-", 1, "invalid number"},
        {"1.", 2, "digit expected"},
        {"1e+", 3, "exponent"},
        {"1e999", 0, "out of range"},
        {"\"abc", 0, "unterminated"},
        {"\"a\\x\"", 2, "invalid escape"},
        {"\"a\nb\"", 2, "control character"},
        {"\"\\u12g4\"", 1, "\\u escape"},
        {"\"\\udc00\"", 1, "lone low surrogate"},
        {"\"x\\ud800\"", 2, "low surrogate"},
        {"\"x\\ud800\\u0041\"", 2, "low surrogate"},
        {"\"\xc3\x28\"", 1, "UTF-8"},
        {"\"\xed\xa0\x80\"", 1, "UTF-8"},  /* encoded surrogate */
        {"\"\xc0\xaf\"", 1, "UTF-8"},      /* overlong */
        {"{} {}", 3, "after the JSON value"},
        {"[1,\xff]", 3, "0xff"},
        {"'a'", 0, "'''"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ss_json_doc_t *d = (ss_json_doc_t *)1;
        char err[256] = "";
        size_t pos = 9999;
        int rc = ss_json_parse(cases[k].in, strlen(cases[k].in), 0, &d, &pos, err, sizeof err);
        ck_assert_msg(rc == SS_ERR_INVALID, "'%s' should fail", cases[k].in);
        ck_assert_ptr_null(d);
        ck_assert_msg(pos == cases[k].pos, "'%s': pos %zu, want %zu (%s)", cases[k].in, pos, cases[k].pos, err);
        ck_assert_msg(strstr(err, cases[k].frag), "'%s': message '%s' lacks '%s'", cases[k].in, err, cases[k].frag);
        char want[32];
        snprintf(want, sizeof want, "byte %zu: ", cases[k].pos);
        ck_assert_msg(!strncmp(err, want, strlen(want)), "'%s': %s", cases[k].in, err);
    }
}
END_TEST

START_TEST(test_unicode_escapes)
{
    ss_json_doc_t *d = parse_ok("[\"\\u0041\\u00e9\\u20ac\", \"\\ud83d\\ude00\", \"a\\u0000b\", "
                                "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"h\xc3\xa9llo \xf0\x9f\x98\x80\"]");
    const ss_json_t *a = ss_json_root(d);
    ck_assert_str_eq(a->u.arr.items[0].u.str.s, "A\xc3\xa9\xe2\x82\xac");
    ck_assert_str_eq(a->u.arr.items[1].u.str.s, "\xf0\x9f\x98\x80");
    ck_assert_uint_eq(a->u.arr.items[2].u.str.n, 3);
    ck_assert_int_eq(memcmp(a->u.arr.items[2].u.str.s, "a\0b", 3), 0);
    ck_assert_str_eq(a->u.arr.items[3].u.str.s, "\"\\/\b\f\n\r\t");
    ck_assert_str_eq(a->u.arr.items[4].u.str.s, "h\xc3\xa9llo \xf0\x9f\x98\x80");
    /* writing and re-parsing gives the same strings */
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_json_write(a, &b), SS_OK);
    ss_json_doc_t *d2 = parse_ok(ss_buf_cstr(&b));
    const ss_json_t *a2 = ss_json_root(d2);
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(a2->u.arr.items[i].u.str.n, a->u.arr.items[i].u.str.n);
        ck_assert_int_eq(memcmp(a2->u.arr.items[i].u.str.s, a->u.arr.items[i].u.str.s, a->u.arr.items[i].u.str.n), 0);
    }
    ss_buf_free(&b);
    ss_json_free(d);
    ss_json_free(d2);
}
END_TEST

START_TEST(test_depth_limit)
{
    size_t n = 100000;
    char *s = malloc(2 * n + 1);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = 0;
    ss_json_doc_t *d = NULL;
    char err[256];
    size_t pos = 0;
    ck_assert_int_eq(ss_json_parse(s, 2 * n, 0, &d, &pos, err, sizeof err), SS_ERR_INVALID);
    ck_assert_uint_eq(pos, SS_JSON_MAX_DEPTH);
    ck_assert_ptr_nonnull(strstr(err, "nesting deeper than 256"));
    /* exactly at the limit is fine */
    size_t m = SS_JSON_MAX_DEPTH;
    ck_assert_int_eq(ss_json_parse(s + n - m, 2 * m, 0, &d, NULL, err, sizeof err), SS_OK);
    ss_json_free(d);
    /* a custom limit */
    ck_assert_int_eq(ss_json_parse("{\"a\":{\"b\":[1]}}", 15, 2, &d, &pos, err, sizeof err), SS_ERR_INVALID);
    ck_assert_uint_eq(pos, 10);
    ck_assert_int_eq(ss_json_parse("{\"a\":{\"b\":[1]}}", 15, 3, &d, NULL, err, sizeof err), SS_OK);
    ss_json_free(d);
    free(s);
}
END_TEST

START_TEST(test_utf8_writer)
{
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_json_put_str_utf8(&b, "a\"\\\n\xff\xc3\xa9z", 8), SS_OK);
    ck_assert_str_eq(ss_buf_cstr(&b), "\"a\\\"\\\\\\u000a\xef\xbf\xbd\xc3\xa9z\"");
    ss_json_doc_t *d = parse_ok(ss_buf_cstr(&b));
    ck_assert_str_eq(ss_json_root(d)->u.str.s, "a\"\\\n\xef\xbf\xbd\xc3\xa9z");
    ss_json_free(d);
    ck_assert(ss_json_utf8_valid("h\xc3\xa9", 3));
    ck_assert(!ss_json_utf8_valid("h\xc3", 2));
    ss_buf_free(&b);
}
END_TEST

START_TEST(test_garbage_no_crash)
{
    size_t n = 1 << 20;
    unsigned char *s = malloc(n);
    uint64_t x = 88172645463325252ULL;
    const char alphabet[] = "{}[]\":,0123456789-+.eEtrufalsn \\u\xc3\xa9\xff";
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s[i] = round < 2 ? (unsigned char)(x >> 24) : (unsigned char)alphabet[(x >> 24) % (sizeof alphabet - 1)];
        }
        if (round == 3) /* a long valid prefix followed by garbage */
            for (size_t i = 0; i < n / 2; i++)
                s[i] = i < 300 ? '[' : ' ';
        ss_json_doc_t *d = NULL;
        char err[256];
        size_t pos = 0;
        int rc = ss_json_parse((const char *)s, n, 0, &d, &pos, err, sizeof err);
        ck_assert_int_eq(rc, SS_ERR_INVALID);
        ck_assert_uint_le(pos, n);
        ck_assert_ptr_null(d);
    }
    /* a 1 MB string and a 1 MB array of numbers are fine */
    memset(s, 'x', n);
    s[0] = '"';
    s[n - 1] = '"';
    ss_json_doc_t *d = NULL;
    ck_assert_int_eq(ss_json_parse((const char *)s, n, 0, &d, NULL, NULL, 0), SS_OK);
    ck_assert_uint_eq(ss_json_root(d)->u.str.n, n - 2);
    ss_json_free(d);
    for (size_t i = 0; i < n; i++)
        s[i] = i % 2 ? '7' : ',';
    s[0] = '[';
    s[n - 2] = ' ';
    s[n - 1] = ']';
    ck_assert_int_eq(ss_json_parse((const char *)s, n, 0, &d, NULL, NULL, 0), SS_OK);
    ck_assert_uint_eq(ss_json_root(d)->u.arr.n, n / 2 - 1);
    ss_json_free(d);
    free(s);
}
END_TEST

/* ss_json_scan_flat gives exactly the members ss_json_parse gives, or declines (SS_ERR_UNSUPPORTED)
 * for what it does not read; it never accepts text that ss_json_parse rejects. */
START_TEST(test_scan_flat)
{
    static const struct { const char *in; int flat; } cases[] = {
        {"{\"auction\":1000,\"bidder\":1001,\"price\":-12.5e1,\"channel\":\"Google\",\"date_time\":1700000000000}", 1},
        {" { \"a\" : true , \"b\":false,\"c\":null, \"d\":\"\", \"a\":9223372036854775808 } ", 1},
        {"{}", 1},
        {"{\"big\":-9223372036854775808,\"r\":1.0,\"e\":1E-2}", 1},
        {"{\"s\":\"x\\ty\"}", 0},            /* an escape */
        {"{\"s\":\"h\xc3\xa9\"}", 0},       /* non-ASCII */
        {"{\"o\":{\"x\":1}}", 0},            /* nested */
        {"{\"a\":[1]}", 0},
        {"[1,2]", 0},
        {"7", 0},
        {"{\"a\":1,}", 0},                   /* invalid: both decline */
        {"{\"a\":01}", 0},
        {"{\"a\":tru}", 0},
        {"{\"a\":1} x", 0},
        {"{\"a\":\"unterminated}", 0},
        {"{\"a\":1e999}", 0},
        {"{\"a\":\"ctl\x01\"}", 0},
        {"", 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const char *in = cases[c].in;
        ss_json_member_t m[8];
        char buf[256];
        size_t n = 99;
        int rc = ss_json_scan_flat(in, strlen(in), m, 8, &n, buf, sizeof buf);
        ck_assert_msg(rc == (cases[c].flat ? SS_OK : SS_ERR_UNSUPPORTED), "case %zu '%s': rc %d", c, in, rc);
        if (rc)
            continue;
        ss_json_doc_t *d = parse_ok(in);
        const ss_json_t *r = ss_json_root(d);
        ck_assert_uint_eq(n, r->u.obj.n);
        for (size_t i = 0; i < n; i++) {
            const ss_json_member_t *a = &m[i], *b = &r->u.obj.m[i];
            ck_assert_uint_eq(a->klen, b->klen);
            ck_assert_str_eq(a->key, b->key);
            ck_assert_int_eq(a->val.t, b->val.t);
            if (a->val.t == SS_JSON_STRING) {
                ck_assert_uint_eq(a->val.u.str.n, b->val.u.str.n);
                ck_assert_str_eq(a->val.u.str.s, b->val.u.str.s);
            } else if (a->val.t == SS_JSON_REAL)
                ck_assert(a->val.u.r == b->val.u.r);
            else if (a->val.t == SS_JSON_INT)
                ck_assert_int_eq(a->val.u.i, b->val.u.i);
            else if (a->val.t == SS_JSON_BOOL)
                ck_assert_int_eq(a->val.u.b, b->val.u.b);
        }
        ss_json_free(d);
    }
    /* limits: more members than cap, or a buffer too small, decline */
    ss_json_member_t m[2];
    char buf[8];
    size_t n;
    const char *three = "{\"a\":1,\"b\":2,\"c\":3}";
    ck_assert_int_eq(ss_json_scan_flat(three, strlen(three), m, 2, &n, buf, sizeof buf), SS_ERR_UNSUPPORTED);
    const char *longs = "{\"a\":\"0123456789\"}";
    ck_assert_int_eq(ss_json_scan_flat(longs, strlen(longs), m, 2, &n, buf, sizeof buf), SS_ERR_UNSUPPORTED);
}
END_TEST

Suite *check_json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_valid_dom);
    tcase_add_test(tc, test_scalars_and_numbers);
    tcase_add_test(tc, test_errors_with_positions);
    tcase_add_test(tc, test_unicode_escapes);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_utf8_writer);
    tcase_add_test(tc, test_garbage_no_crash);
    tcase_add_test(tc, test_scan_flat);
    suite_add_tcase(s, tc);
    return s;
}
