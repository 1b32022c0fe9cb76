/*
 * fuzz_pgwire.c — libFuzzer harness for the PostgreSQL protocol layer's parsers
 * (built only with clang; run by scripts/fuzz.sh): the first byte picks the target,
 * the rest is its input —
 *   0 startup packets, 1 Parse, 2 Bind (then each bound value as a SQL literal, which
 *   must never hold an unescaped quote), 3 Describe/Close/Execute/Query/SASL,
 *   4 $n substitution (the offset map covers every output byte), 5 statement
 *   classification and splitting (pieces in order, inside the input), 6 SCRAM
 *   client-first/final messages, 7 binary cell encodings.
 * Besides "no crash, no leak, no UB" it checks those invariants.
 */
#include "pgwire.h"
#include "pgwire_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void literal_ok(const char *s)
{
    /* a quoted literal: every quote inside is doubled */
    size_t n = strlen(s);
    if (n && s[0] == '\'') {
        if (n < 2 || s[n - 1] != '\'')
            abort();
        for (size_t i = 1; i + 1 < n; i++) {
            if (s[i] == '\'') {
                if (s[i + 1] != '\'' || i + 2 >= n)
                    abort();
                i++;
            }
        }
    }
}

static void bind_values(const uint8_t *d, size_t n)
{
    pg_bind_msg_t b;
    char err[SS_ERRSZ];
    if (pg_decode_bind(d, n, &b, err, sizeof err) != SS_OK)
        return;
    static const uint32_t types[] = {0, PG_OID_TEXT, PG_OID_INT4, PG_OID_INT8, PG_OID_FLOAT8, PG_OID_NUMERIC,
                                     PG_OID_BOOL, PG_OID_JSONB, PG_OID_INT2, PG_OID_FLOAT4};
    for (int i = 0; i < b.nparams; i++) {
        int f = b.nfmts == 0 ? 0 : b.nfmts == 1 ? b.fmts[0] : b.fmts[i];
        ss_buf_t o = SS_BUF_INIT;
        if (pg_param_sql(types[(size_t)i % (sizeof types / sizeof *types)], f, b.vals[i], b.lens[i], &o, err,
                         sizeof err) == SS_OK)
            literal_ok(ss_buf_cstr(&o));
        ss_buf_free(&o);
    }
    pg_bind_msg_free(&b);
}

static void substitute(const uint8_t *d, size_t n)
{
    char *sql = malloc(n + 1);
    memcpy(sql, d, n);
    sql[n] = 0;
    char *params[] = {"'a''b'", "(-1)", "NULL"};
    ss_buf_t o = SS_BUF_INIT;
    int *map = NULL;
    char err[SS_ERRSZ];
    size_t len = strlen(sql);
    if (pg_substitute(sql, 3, params, &o, &map, err, sizeof err) == SS_OK) {
        for (size_t i = 0; i <= o.len; i++)
            if (map[i] < 0 || (size_t)map[i] > len)
                abort();
        free(map);
    }
    (void)pg_max_param(sql);
    ss_buf_free(&o);
    free(sql);
}

static void classify(const uint8_t *d, size_t n)
{
    char *sql = malloc(n + 1);
    memcpy(sql, d, n);
    sql[n] = 0;
    size_t len = strlen(sql);
    pg_cmd_t c;
    if (pg_classify(sql, len, &c) == SS_OK && (c.kind == PG_CMD_COPY || c.kind == PG_CMD_DECLARE) &&
        c.inner_at + c.inner_len > len)
        abort();
    size_t *st = NULL, *en = NULL;
    int k = pg_split(sql, len, &st, &en);
    for (int i = 0; i < k; i++)
        if (st[i] > en[i] || en[i] > len || (i && st[i] != en[i - 1]))
            abort();
    free(st);
    free(en);
    free(sql);
}

static void scram(const uint8_t *d, size_t n)
{
    static const uint8_t salt[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static pg_scram_key_t keys[2];
    if (!keys[0].set) {
        pg_scram_derive("pw1", salt, 16, &keys[0]);
        pg_scram_derive("pw2", salt, 16, &keys[1]);
    }
    size_t cut = n ? d[0] % (n + 1) : 0;
    pg_scram_t s = {keys, 2, salt, 16, "", NULL, NULL, -1};
    ss_buf_t o = SS_BUF_INIT;
    char err[SS_ERRSZ];
    if (pg_scram_first(&s, d, cut, &o, err, sizeof err) == SS_OK) {
        ss_buf_reset(&o);
        if (pg_scram_final(&s, d + cut, n - cut, &o, err, sizeof err) == SS_OK)
            abort(); /* a proof for an unknown password cannot match */
    }
    pg_scram_free(&s);
    ss_buf_free(&o);
}

static void cells(const uint8_t *d, size_t n)
{
    char *t = malloc(n + 1);
    memcpy(t, d, n);
    t[n] = 0;
    static const uint32_t oids[] = {PG_OID_INT8, PG_OID_INT4, PG_OID_INT2, PG_OID_FLOAT8, PG_OID_FLOAT4,
                                    PG_OID_NUMERIC, PG_OID_BOOL, PG_OID_TEXT, PG_OID_JSONB};
    for (size_t i = 0; i < sizeof oids / sizeof *oids; i++) {
        ss_buf_t o = SS_BUF_INIT;
        if (pg_put_cell(&o, oids[i], 1, t) == SS_OK) {
            if (o.len < 4)
                abort();
            uint32_t l = (uint32_t)(uint8_t)o.data[0] << 24 | (uint32_t)(uint8_t)o.data[1] << 16 |
                         (uint32_t)(uint8_t)o.data[2] << 8 | (uint8_t)o.data[3];
            if (l != o.len - 4)
                abort();
            if (oids[i] == PG_OID_NUMERIC) { /* binary numeric reads back as the same number */
                ss_buf_t back = SS_BUF_INIT;
                char err[SS_ERRSZ];
                (void)pg_param_sql(PG_OID_NUMERIC, 1, (const uint8_t *)o.data + 4, (int32_t)l, &back, err,
                                   sizeof err);
                ss_buf_free(&back);
            }
        }
        ss_buf_free(&o);
    }
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    char err[SS_ERRSZ];
    switch (data[0] % 8) {
    case 0: {
        pg_startup_t st;
        (void)pg_decode_startup(d, n, &st, err, sizeof err);
        break;
    }
    case 1: {
        pg_parse_msg_t m;
        if (pg_decode_parse(d, n, &m, err, sizeof err) == SS_OK)
            pg_parse_msg_free(&m);
        break;
    }
    case 2: bind_values(d, n); break;
    case 3: {
        char which;
        const char *name, *sql, *mech;
        int32_t rows;
        const uint8_t *sd;
        size_t sl;
        (void)pg_decode_target(d, n, &which, &name, err, sizeof err);
        (void)pg_decode_execute(d, n, &name, &rows, err, sizeof err);
        (void)pg_decode_query(d, n, &sql, err, sizeof err);
        (void)pg_decode_sasl_initial(d, n, &mech, &sd, &sl, err, sizeof err);
        break;
    }
    case 4: substitute(d, n); break;
    case 5: classify(d, n); break;
    case 6: scram(d, n); break;
    case 7: cells(d, n); break;
    }
    return 0;
}
