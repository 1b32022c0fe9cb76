/*
 * fuzz_json.c — libFuzzer harness for the JSON decoders (built only with clang; run
 * by scripts/fuzz.sh):
 *   - ss_json_parse: a parsed document written out (ss_json_write) parses again and
 *     writes out the same;
 *   - ss_jtext_compact (the SQL JSON type) accepts exactly what ss_json_parse accepts,
 *     and its output is a fixed point; typeof/length/->>/lookups on it never read past it;
 *   - the message decoders of streams (ss_format_key: json, debezium, upsert) on a
 *     schema of every column type.
 */
#include "ss_connect.h"
#include "ss_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static ss_schema_t *schema(void)
{
    static ss_schema_t *s;
    if (!s) {
        s = ss_schema_new(7);
        ss_schema_set(s, 0, "id", SS_COL_INT, 1);
        ss_schema_set(s, 1, "name", SS_COL_TEXT, 0);
        ss_schema_set(s, 2, "score", SS_COL_REAL, 0);
        ss_schema_set(s, 3, "ok", SS_COL_BOOL, 0);
        ss_schema_set(s, 4, "amount", SS_COL_NUMERIC, 0);
        ss_schema_set_typmod(s, 4, (10 << 16) | 2);
        ss_schema_set(s, 5, "doc", SS_COL_JSON, 0);
        ss_schema_set(s, 6, "k2", SS_COL_TEXT, 1);
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    const char *t = (const char *)data;
    char err[SS_ERRSZ];
    ss_json_doc_t *d = NULL;
    size_t pos = 0;
    int ok = ss_json_parse(t, size, 0, &d, &pos, err, sizeof err) == SS_OK;
    ss_buf_t a = SS_BUF_INIT, b = SS_BUF_INIT, c = SS_BUF_INIT;
    if (ok) {
        if (ss_json_write(ss_json_root(d), &a))
            abort();
        /* what it writes parses again; after one round the text is a fixed point (a REAL such as
         * 2.0 or -0.0 is written "2" / "-0" and reads back as an INT: equal values, new type) */
        ss_json_doc_t *d2 = NULL, *d3 = NULL;
        if (ss_json_parse(a.data, a.len, 0, &d2, NULL, err, sizeof err) != SS_OK || ss_json_write(ss_json_root(d2), &b))
            abort();
        ss_buf_reset(&a);
        if (ss_json_parse(b.data, b.len, 0, &d3, NULL, err, sizeof err) != SS_OK ||
            ss_json_write(ss_json_root(d3), &a) || a.len != b.len || memcmp(a.data, b.data, a.len))
            abort();
        ss_json_free(d2);
        ss_json_free(d3);
    } else if (pos > size) {
        abort();
    }
    ss_json_free(d);
    int cok = ss_jtext_compact(t, size, &c, err, sizeof err) == SS_OK;
    if (cok != ok && !strstr(err, "deep"))
        abort();
    if (cok) {
        ss_buf_t c2 = SS_BUF_INIT, txt = SS_BUF_INIT;
        if (ss_jtext_compact(c.data, c.len, &c2, err, sizeof err) != SS_OK || c2.len != c.len ||
            memcmp(c.data, c2.data, c.len))
            abort();
        (void)ss_jtext_typeof(c.data, c.len);
        (void)ss_jtext_array_length(c.data, c.len);
        const char *vs;
        size_t vn;
        if (ss_jtext_get_key(c.data, c.len, "a", 1, &vs, &vn) && (vs < c.data || vs + vn > c.data + c.len))
            abort();
        if (ss_jtext_get_index(c.data, c.len, -1, &vs, &vn) && (vs < c.data || vs + vn > c.data + c.len))
            abort();
        int is_null;
        (void)ss_jtext_to_text(c.data, c.len, &txt, &is_null);
        ss_buf_free(&c2);
        ss_buf_free(&txt);
    }
    for (int f = SS_FMT_JSON; f <= SS_FMT_UPSERT; f++) {
        ss_buf_t k = SS_BUF_INIT;
        (void)ss_format_key((ss_format_t)f, schema(), data, size, &k, err, sizeof err);
        ss_buf_free(&k);
    }
    ss_buf_free(&a);
    ss_buf_free(&b);
    ss_buf_free(&c);
    return 0;
}
