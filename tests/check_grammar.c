/*
 * check_grammar.c — structured output: the JSON Schema subset (src/base/jschema.c),
 * the byte automaton compiled from it (gpu/grammar.c) against hand-written valid and
 * invalid texts and against random walks (every text the automaton accepts parses
 * with the strict JSON parser and type-checks against the schema), and constrained
 * GENERATE on the real stories260K model: every answer, greedy or sampled, at any
 * max_tokens at least the schema's minimum, is a complete value of the schema.
 */
#include "ss_grammar.h"
#include "ss_jschema.h"
#include "ss_json.h"
#include "ss_llm.h"
#include "ss_zset.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

/* 1 when v is a value of schema s (the checker the tests trust, written from the spec). */
static int conforms(const ss_jschema_t *s, const ss_json_t *v)
{
    switch (v->t) {
    case SS_JSON_NULL: return (s->types & SS_JS_NULL) != 0;
    case SS_JSON_BOOL: return (s->types & SS_JS_BOOLEAN) != 0;
    case SS_JSON_INT: return (s->types & (SS_JS_INTEGER | SS_JS_NUMBER)) != 0;
    case SS_JSON_REAL: return (s->types & SS_JS_NUMBER) != 0;
    case SS_JSON_STRING:
        if (!(s->types & SS_JS_STRING))
            return 0;
        for (int i = 0; i < s->nenum; i++)
            if (!strcmp(s->enums[i], v->u.str.s))
                return 1;
        return s->nenum == 0;
    case SS_JSON_ARRAY:
        if (!(s->types & SS_JS_ARRAY))
            return 0;
        for (size_t i = 0; i < v->u.arr.n; i++)
            if (!conforms(s->items, &v->u.arr.items[i]))
                return 0;
        return 1;
    case SS_JSON_OBJECT:
        if (!(s->types & SS_JS_OBJECT) || v->u.obj.n != (size_t)s->nprops)
            return 0;
        for (int i = 0; i < s->nprops; i++)
            if (strcmp(v->u.obj.m[i].key, s->names[i]) || !conforms(s->props[i], &v->u.obj.m[i].val))
                return 0;
        return 1;
    }
    return 0;
}

static int parses_and_conforms(const ss_jschema_t *s, const char *text, size_t n)
{
    ss_json_doc_t *d = NULL;
    char err[128];
    if (ss_json_parse(text, n, 0, &d, NULL, err, sizeof err))
        return 0;
    int ok = conforms(s, ss_json_root(d));
    ss_json_free(d);
    return ok;
}

static ss_jschema_t *schema_of(const char *json)
{
    ss_jschema_t *s = NULL;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_jschema_parse(json, strlen(json), &s, err, sizeof err) == SS_OK, "%s: %s", json, err);
    return s;
}

static ss_gram_t *gram_of(const ss_jschema_t *s)
{
    ss_gram_t *g = NULL;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_gram_compile(s, &g, err, sizeof err) == SS_OK, "compile: %s", err);
    return g;
}

static ss_jschema_t *schema_of_cols(const char *spec)
{
    ss_jscol_t *c = NULL;
    int n = 0, off = 0;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_jscols_parse(spec, &c, &n, &off, err, sizeof err) == SS_OK, "%s: %s", spec, err);
    ss_jschema_t *s = NULL;
    ck_assert_int_eq(ss_jschema_from_cols(c, n, &s), SS_OK);
    ss_jscols_free(c, n);
    return s;
}

static const char *PEOPLE = "name TEXT, age INT, score DOUBLE PRECISION, ok BOOLEAN, price NUMERIC(10,2)";

/* ------------------------------------------------------------ schemas */

START_TEST(test_cols_parse)
{
    ss_jscol_t *c = NULL;
    int n = 0, off = -1;
    char err[SS_ERRSZ] = "";
    ck_assert_int_eq(ss_jscols_parse(PEOPLE, &c, &n, &off, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 5);
    ck_assert_str_eq(c[0].name, "name");
    ck_assert_int_eq(c[0].type, SS_COL_TEXT);
    ck_assert_int_eq(c[1].type, SS_COL_INT);
    ck_assert_int_eq(c[2].type, SS_COL_REAL);
    ck_assert_int_eq(c[3].type, SS_COL_BOOL);
    ck_assert_int_eq(c[4].type, SS_COL_NUMERIC);
    ss_jscols_free(c, n);
    ck_assert_int_eq(ss_jscols_parse("\"First Name\" varchar(20)", &c, &n, &off, err, sizeof err), SS_OK);
    ck_assert_str_eq(c[0].name, "First Name");
    ss_jscols_free(c, n);
    /* errors say what and where */
    ck_assert_int_eq(ss_jscols_parse("a TEXT, b BLOB", &c, &n, &off, err, sizeof err), SS_ERR_INVALID);
    ck_assert_int_eq(off, 10);
    ck_assert_ptr_nonnull(strstr(err, "unknown type"));
    ck_assert_int_eq(ss_jscols_parse("a TEXT, A INT", &c, &n, &off, err, sizeof err), SS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "named twice"));
    ck_assert_int_eq(off, 8);
    ck_assert_int_eq(ss_jscols_parse("a TEXT b INT", &c, &n, &off, err, sizeof err), SS_ERR_INVALID);
    ck_assert_int_eq(ss_jscols_parse("a", &c, &n, &off, err, sizeof err), SS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "expected a type"));
    ck_assert_int_eq(ss_jscols_parse("", &c, &n, &off, err, sizeof err), SS_ERR_INVALID);
}
END_TEST

START_TEST(test_schema_parse)
{
    ss_jschema_t *s = NULL;
    char err[SS_ERRSZ] = "";
    const char *ok = "{\"type\":\"object\",\"properties\":{\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
                     "\"kind\":{\"enum\":[\"a\",\"b\",null]},\"n\":{\"type\":[\"integer\",\"null\"]}},"
                     "\"required\":[\"tags\"],\"additionalProperties\":false,\"description\":\"x\"}";
    ck_assert_int_eq(ss_jschema_parse(ok, strlen(ok), &s, err, sizeof err), SS_OK);
    ck_assert_int_eq(s->nprops, 3);
    ck_assert_str_eq(s->names[1], "kind");
    ck_assert_int_eq(s->props[1]->nenum, 2);
    ck_assert_uint_eq(s->props[1]->types, SS_JS_STRING | SS_JS_NULL);
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_jschema_write(s, &b), SS_OK);
    ss_jschema_t *s2 = NULL; /* the canonical text reads back to the same text */
    ck_assert_int_eq(ss_jschema_parse(b.data, b.len, &s2, err, sizeof err), SS_OK);
    ss_buf_t b2 = SS_BUF_INIT;
    ss_jschema_write(s2, &b2);
    ck_assert_str_eq(ss_buf_cstr(&b), ss_buf_cstr(&b2));
    ss_buf_free(&b);
    ss_buf_free(&b2);
    ss_jschema_free(s);
    ss_jschema_free(s2);
    const char *bad[][2] = {
        {"{\"type\":\"string\",\"pattern\":\"a+\"}", "/: unsupported keyword pattern"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#\"}}}", "/properties/a: "},
        {"{\"type\":\"object\",\"additionalProperties\":true}", "additionalProperties"},
        {"{\"type\":\"array\"}", "needs \"items\""},
        {"{\"type\":\"strin\"}", "unknown type strin"},
        {"{\"enum\":[1,2]}", "strings"},
        {"[1]", "must be an object"},
        {"{\"type\":", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(ss_jschema_parse(bad[i][0], strlen(bad[i][0]), &s, err, sizeof err), SS_ERR_INVALID);
        ck_assert_msg(strstr(err, bad[i][1]) != NULL, "%s: %s", bad[i][0], err);
        ck_assert_ptr_null(s);
    }
}
END_TEST

/* ------------------------------------------------------------ automaton */

START_TEST(test_gram_accepts)
{
    ss_jschema_t *s = schema_of_cols(PEOPLE);
    ss_gram_t *g = gram_of(s);
    const char *good[] = {
        "{\"name\":\"Bob\",\"age\":42,\"score\":1.5e3,\"ok\":true,\"price\":10.25}",
        "{\"name\": \"Bob\", \"age\": -7, \"score\": -0.5E-2, \"ok\": false, \"price\": 0}",
        "{\"name\":null,\"age\":null,\"score\":null,\"ok\":null,\"price\":null}",
        "{\"name\":\"\\\"q\\\" \\\\ \\n caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\",\"age\":999999999999999999,"
        "\"score\":0,\"ok\":true,\"price\":1}",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        ck_assert_msg(ss_gram_accepts(g, good[i], strlen(good[i])), "rejected %s", good[i]);
        ck_assert(parses_and_conforms(s, good[i], strlen(good[i])));
    }
    const char *bad[] = {
        "{\"name\":\"Bob\",\"age\":1.5,\"score\":1,\"ok\":true,\"price\":1}",          /* a real for INT */
        "{\"name\":\"Bob\",\"age\":1,\"score\":1,\"ok\":1,\"price\":1}",               /* 1 for BOOLEAN */
        "{\"name\":\"Bob\",\"age\":1,\"score\":1,\"ok\":true}",                        /* a missing field */
        "{\"age\":1,\"name\":\"Bob\",\"score\":1,\"ok\":true,\"price\":1}",            /* order */
        "{\"name\":\"Bob\",\"age\":1,\"score\":1,\"ok\":true,\"price\":1} ",           /* trailing text */
        "{\"name\":\"Bob\",\"age\":1234567890123456789,\"score\":1,\"ok\":true,\"price\":1}", /* 19 digits */
        "{\"name\":\"a\nb\",\"age\":1,\"score\":1,\"ok\":true,\"price\":1}",           /* raw newline */
        "{\"name\":\"\\u0041\",\"age\":1,\"score\":1,\"ok\":true,\"price\":1}",        /* \u escape */
        "{\"name\":\"\xc3\",\"age\":1,\"score\":1,\"ok\":true,\"price\":1}",           /* broken UTF-8 */
        "{\"name\":\"\xed\xa0\x80\",\"age\":1,\"score\":1,\"ok\":true,\"price\":1}",   /* a surrogate */
        "{\"name\":\"Bob\",\"age\":01,\"score\":1,\"ok\":true,\"price\":1}",           /* leading zero */
        "{\"name\":\"Bob\",\"age\":1,\"score\":1.,\"ok\":true,\"price\":1}",           /* "1." */
        "{\"name\":\"Bob\",  \"age\":1,\"score\":1,\"ok\":true,\"price\":1}",          /* two spaces */
        "{\"name\":\"Bob\",\"age\":1,\"score\":1,\"ok\":true,\"price\":1",             /* unfinished */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(!ss_gram_accepts(g, bad[i], strlen(bad[i])), "accepted %s", bad[i]);
    /* the shortest value: the shortest of each type, no spaces */
    ck_assert_int_eq(ss_gram_dist(g, ss_gram_start(g)),
                     (int)strlen("{\"name\":\"\",\"age\":0,\"score\":0,\"ok\":null,\"price\":0}"));
    ss_gram_free(g);
    ss_jschema_free(s);
}
END_TEST

static uint64_t rs;
static uint32_t rnd(void)
{
    rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rs >> 33);
}

/* Random walks through the automaton: at each step a random allowed byte (biased towards
 * printable ones), switching to the shortest way out after `budget` bytes; every text it
 * ends with parses and conforms. */
static void random_walks(const char *schema_json, int walks)
{
    ss_jschema_t *s = schema_of(schema_json);
    ss_gram_t *g = gram_of(s);
    char *text = malloc(1 << 16);
    for (int w = 0; w < walks; w++) {
        int st = ss_gram_start(g), n = 0, budget = (int)(rnd() % 200);
        while (!ss_gram_final(g, st)) {
            if (ss_gram_accepting(g, st) && rnd() % 4 == 0)
                break;
            int cand[256], nc = 0, best = -1;
            for (int c = 0; c < 256; c++) {
                int to = ss_gram_step(g, st, (unsigned char)c);
                if (to < 0)
                    continue;
                cand[nc++] = c;
                if (best < 0 || ss_gram_dist(g, to) < ss_gram_dist(g, ss_gram_step(g, st, (unsigned char)best)))
                    best = c;
            }
            ck_assert_int_gt(nc, 0); /* a state that is not final can always go on */
            int c = n >= budget ? best : cand[rnd() % (unsigned)nc];
            if (n < budget && c >= 0x80 && rnd() % 4)
                c = cand[rnd() % (unsigned)nc];
            int to = ss_gram_step(g, st, (unsigned char)c);
            ck_assert_int_le(ss_gram_dist(g, st), ss_gram_dist(g, to) + 1);
            text[n++] = (char)c;
            st = to;
            ck_assert_int_lt(n, (1 << 16) - 1);
        }
        ck_assert(ss_gram_accepting(g, st));
        ck_assert_msg(parses_and_conforms(s, text, (size_t)n), "walk %d: %.*s", w, n, text);
    }
    free(text);
    ss_gram_free(g);
    ss_jschema_free(s);
}

START_TEST(test_gram_random_walks)
{
    rs = 99;
    random_walks("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":[\"string\",\"null\"]},\"b\":{\"type\":\"integer\"},"
                 "\"c\":{\"type\":\"number\"},\"d\":{\"type\":\"boolean\"}}}", 300);
    random_walks("{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                 "\"properties\":{\"sku\":{\"type\":\"string\"},\"qty\":{\"type\":\"integer\"},"
                 "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"green\",\"reed\"]}}}}},"
                 "\"note\":{\"type\":[\"string\",\"null\"]},\"empty\":{\"type\":\"object\",\"properties\":{}}}}", 300);
    random_walks("{\"type\":[\"number\",\"null\"]}", 100);
    random_walks("{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":[\"integer\",\"boolean\"]}}}", 100);
    random_walks("{\"enum\":[\"yes\",\"no\",\"n/a\",\"caf\xc3\xa9\"]}", 50);
}
END_TEST

START_TEST(test_gram_ambiguous)
{
    ss_gram_t *g = NULL;
    char err[SS_ERRSZ] = "";
    /* integer + number is a number; string + null and the like are all distinct at the first byte */
    const char *ok = "{\"type\":[\"integer\",\"number\",\"string\",\"boolean\",\"null\",\"array\"],\"items\":{\"type\":\"null\"}}";
    ck_assert_int_eq(ss_gram_compile_text(ok, strlen(ok), &g, err, sizeof err), SS_OK);
    ck_assert(ss_gram_accepts(g, "1.5", 3));
    ck_assert(ss_gram_accepts(g, "[null, null]", 12));
    ss_gram_free(g);
    const char *deep = "{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":"
                       "\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":\"null\"}}}}}}";
    ck_assert_int_eq(ss_gram_compile_text(deep, strlen(deep), &g, err, sizeof err), SS_OK);
    ck_assert(ss_gram_accepts(g, "[[[[[null]]]]]", 14));
    ss_gram_free(g);
}
END_TEST

/* ------------------------------------------------------------ the engine */

static ss_llm_t *open_model(void)
{
    char buf[1024], err[SS_ERRSZ] = "";
    ss_llm_t *m = NULL;
    ss_llm_opts_t o = {.threads = 1};
    ck_assert_msg(ss_llm_open(tu_model_path("stories260K.gguf", buf, sizeof buf), &o, &m, err, sizeof err) == SS_OK,
                  "%s", err);
    return m;
}

static const char *PROMPTS[] = {
    "Once upon a time there was a little girl named Lily. She",
    "### Task\nExtract the fields.\n### Input\n<txt>Tom is 5 years old and likes red balls.</txt>\n### Answer:",
    "The dog ran to the park. The sun was",
    "{\"name\": \"",
    "One day, a big bird",
    "Sam and Mia played with a ball. Then",
};

/* Greedy and sampled constrained answers are complete values of the schema whatever max_tokens
 * (at least the minimum) allows; the minimum itself is reported when max_tokens is smaller. */
static void engine_runs(ss_llm_t *m, const char *schema_json, float temp)
{
    ss_jschema_t *s = schema_of(schema_json);
    int nprompts = (int)(sizeof PROMPTS / sizeof *PROMPTS);
    static const int maxt[] = {200, 120, 0};
    int minimal = -1;
    for (int k = 0; k < 3; k++) {
        ss_infer_req_t reqs[8];
        ss_infer_res_t res[8];
        memset(res, 0, sizeof res);
        for (int i = 0; i < nprompts; i++) {
            memset(&reqs[i], 0, sizeof reqs[i]);
            reqs[i].kind = SS_INFER_GENERATE;
            reqs[i].prompt = PROMPTS[i];
            reqs[i].max_tokens = maxt[k] ? maxt[k] : minimal;
            reqs[i].temperature = temp;
            reqs[i].seed = 1234 + (uint64_t)i;
            reqs[i].json_schema = schema_json;
        }
        char err[SS_ERRSZ] = "";
        ck_assert_msg(ss_llm_run(m, reqs, nprompts, res, err, sizeof err) == SS_OK, "%s", err);
        for (int i = 0; i < nprompts; i++) {
            ck_assert_msg(res[i].status == SS_OK, "prompt %d: %s", i, res[i].error ? res[i].error : "");
            ck_assert_int_le(res[i].gen_tokens, reqs[i].max_tokens);
            ck_assert_msg(parses_and_conforms(s, res[i].text, strlen(res[i].text)), "max_tokens %d: %s",
                          reqs[i].max_tokens, res[i].text);
            ss_infer_res_clear(&res[i]);
        }
        if (k == 1) { /* find the minimum: one token fewer fails with a message saying so */
            memset(&reqs[0], 0, sizeof reqs[0]);
            reqs[0].kind = SS_INFER_GENERATE;
            reqs[0].prompt = PROMPTS[0];
            reqs[0].json_schema = schema_json;
            for (int t = 1; t < 200 && minimal < 0; t++) {
                reqs[0].max_tokens = t;
                memset(&res[0], 0, sizeof res[0]);
                ck_assert_int_eq(ss_llm_run(m, reqs, 1, res, err, sizeof err), SS_OK);
                if (res[0].status == SS_OK)
                    minimal = t;
                else
                    ck_assert_msg(strstr(res[0].error, "too small for the JSON schema"), "%s", res[0].error);
                ss_infer_res_clear(&res[0]);
            }
            ck_assert_int_gt(minimal, 1);
        }
    }
    ss_jschema_free(s);
}

START_TEST(test_engine_constrained)
{
    ss_llm_t *m = open_model();
    ss_jschema_t *s = schema_of_cols(PEOPLE);
    ss_buf_t b = SS_BUF_INIT;
    ss_jschema_write(s, &b);
    engine_runs(m, ss_buf_cstr(&b), 0.0f);
    engine_runs(m, ss_buf_cstr(&b), 0.9f);
    engine_runs(m, "{\"type\":\"object\",\"properties\":{\"kind\":{\"enum\":[\"cat\",\"dog\",\"bird\"]},"
                   "\"words\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}", 0.0f);
    engine_runs(m, "{\"type\":\"object\",\"properties\":{\"kind\":{\"enum\":[\"cat\",\"dog\",\"bird\"]},"
                   "\"words\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}", 1.0f);
    /* unconstrained greedy text of the same prompt is not JSON: the constraint is what makes it so */
    ss_infer_req_t r = {.kind = SS_INFER_GENERATE, .prompt = PROMPTS[0], .max_tokens = 30};
    ss_infer_res_t res;
    memset(&res, 0, sizeof res);
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_llm_run(m, &r, 1, &res, err, sizeof err), SS_OK);
    ck_assert(!parses_and_conforms(s, res.text, strlen(res.text)));
    ss_infer_res_clear(&res);
    /* a schema outside the subset fails the request with the schema's error */
    r.json_schema = "{\"type\":\"string\",\"format\":\"email\"}";
    ck_assert_int_eq(ss_llm_run(m, &r, 1, &res, err, sizeof err), SS_OK);
    ck_assert_int_eq(res.status, SS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(res.error, "unsupported keyword format"));
    ss_infer_res_clear(&res);
    ss_buf_free(&b);
    ss_jschema_free(s);
    ss_llm_close(m);
}
END_TEST

Suite *check_grammar_suite(void)
{
    Suite *s = suite_create("grammar");
    TCase *tc = tcase_create("grammar");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_cols_parse);
    tcase_add_test(tc, test_schema_parse);
    tcase_add_test(tc, test_gram_accepts);
    tcase_add_test(tc, test_gram_random_walks);
    tcase_add_test(tc, test_gram_ambiguous);
    tcase_add_test(tc, test_engine_constrained);
    suite_add_tcase(s, tc);
    return s;
}
