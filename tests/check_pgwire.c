/*
 * check_pgwire.c — the PostgreSQL protocol layer on its own (src/cli/pgwire*.c):
 *   - decoders of frontend messages: well-formed ones, and every truncation of them
 *     refused with a message (never read past the end);
 *   - bound parameters as SQL literals: quoting, numbers (negative ones cannot start
 *     a comment), booleans, NULL, binary int/float/numeric, invalid UTF-8 refused;
 *   - $n substitution outside quotes, comments and dollar quotes, with the offset map;
 *   - statement classification (BEGIN, SET, SHOW, COPY, DECLARE, FETCH, catalog queries)
 *     and splitting;
 *   - binary cell encodings (int8, float8, bool, numeric) against PostgreSQL's formats;
 *   - SCRAM-SHA-256 against RFC 7677's test vector (user "user", password "pencil"),
 *     a wrong proof refused, the matching key picked among two;
 *   - a whole session over a socketpair with a real engine: startup, a query, an
 *     extended-protocol round, an error with its position, Terminate.
 */
#include "pgwire.h"
#include "pgwire_int.h"
#include "testutil.h"

#include <check.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

START_TEST(test_decode_startup)
{
    uint8_t m[64];
    size_t n = 0;
    put32(m, 196608);
    n = 4;
    static const char kv[] = "user\0bob\0database\0db\0"; /* and the terminating NUL of the array */
    memcpy(m + n, kv, sizeof kv);
    n += sizeof kv;
    pg_startup_t st;
    char err[SS_ERRSZ];
    ck_assert_int_eq(pg_decode_startup(m, n, &st, err, sizeof err), SS_OK);
    ck_assert_int_eq(st.kind, PG_START_STARTUP);
    ck_assert_str_eq(st.user, "bob");
    ck_assert_str_eq(st.database, "db");
    for (size_t k = 0; k < n; k++) /* every truncation is refused */
        ck_assert_int_ne(pg_decode_startup(m, k, &st, err, sizeof err), SS_OK);
    uint8_t c[12];
    put32(c, 80877102);
    put32(c + 4, 1234);
    put32(c + 8, 0xdeadbeef);
    ck_assert_int_eq(pg_decode_startup(c, 12, &st, err, sizeof err), SS_OK);
    ck_assert_int_eq(st.kind, PG_START_CANCEL);
    ck_assert_int_eq(st.cancel_pid, 1234);
    ck_assert_int_eq((uint32_t)st.cancel_key, 0xdeadbeefu);
    put32(c, 2 << 16);
    ck_assert_int_eq(pg_decode_startup(c, 4, &st, err, sizeof err), SS_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err, "unsupported frontend protocol 2.0"));
}
END_TEST

START_TEST(test_decode_bind_parse)
{
    /* Bind: portal "", statement "s1", 1 format (text), 2 params ('42', NULL), 1 result format (binary) */
    uint8_t m[64];
    size_t n = 0;
    memcpy(m, "\0s1\0", 4);
    n = 4;
    m[n++] = 0, m[n++] = 1, m[n++] = 0, m[n++] = 0;
    m[n++] = 0, m[n++] = 2;
    put32(m + n, 2), n += 4;
    memcpy(m + n, "42", 2), n += 2;
    put32(m + n, 0xffffffff), n += 4;
    m[n++] = 0, m[n++] = 1, m[n++] = 0, m[n++] = 1;
    pg_bind_msg_t b;
    char err[SS_ERRSZ];
    ck_assert_int_eq(pg_decode_bind(m, n, &b, err, sizeof err), SS_OK);
    ck_assert_str_eq(b.stmt, "s1");
    ck_assert_int_eq(b.nparams, 2);
    ck_assert_int_eq(b.lens[0], 2);
    ck_assert(!memcmp(b.vals[0], "42", 2));
    ck_assert_ptr_null(b.vals[1]);
    ck_assert_int_eq(b.nrfmts, 1);
    ck_assert_int_eq(b.rfmts[0], 1);
    pg_bind_msg_free(&b);
    for (size_t k = 0; k < n; k++)
        ck_assert_int_ne(pg_decode_bind(m, k, &b, err, sizeof err), SS_OK);
    /* a parameter longer than the message */
    uint8_t bad[] = {0, 0, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 'x'};
    ck_assert_int_ne(pg_decode_bind(bad, sizeof bad, &b, err, sizeof err), SS_OK);
    ck_assert_ptr_nonnull(strstr(err, "parameter value"));
    /* Parse with two typed parameters */
    uint8_t p[64];
    n = 0;
    static const char pq[] = "\0SELECT $1, $2"; /* name "", query, and the array's NUL */
    memcpy(p, pq, sizeof pq);
    n = sizeof pq;
    p[n++] = 0, p[n++] = 2;
    put32(p + n, 23), n += 4;
    put32(p + n, 25), n += 4;
    pg_parse_msg_t pm;
    ck_assert_int_eq(pg_decode_parse(p, n, &pm, err, sizeof err), SS_OK);
    ck_assert_int_eq(pm.nparams, 2);
    ck_assert_int_eq(pm.types[1], 25);
    pg_parse_msg_free(&pm);
    for (size_t k = 0; k < n; k++)
        ck_assert_int_ne(pg_decode_parse(p, k, &pm, err, sizeof err), SS_OK);
}
END_TEST

static const char *param(uint32_t type, int fmt, const void *v, int32_t len)
{
    static ss_buf_t b;
    static char err[SS_ERRSZ];
    ss_buf_reset(&b);
    if (pg_param_sql(type, fmt, v, len, &b, err, sizeof err) != SS_OK)
        return err;
    return ss_buf_cstr(&b);
}

START_TEST(test_params)
{
    ck_assert_str_eq(param(0, 0, "it's", 4), "'it''s'");
    ck_assert_str_eq(param(PG_OID_TEXT, 0, "a--b", 4), "'a--b'");
    ck_assert_str_eq(param(PG_OID_INT8, 0, "-5", 2), "(-5)");
    ck_assert_str_eq(param(PG_OID_INT4, 0, " 7 ", 3), "7");
    ck_assert_ptr_nonnull(strstr(param(PG_OID_INT4, 0, "7; DROP VIEW v", 14), "invalid input syntax for type integer"));
    ck_assert_ptr_nonnull(strstr(param(PG_OID_INT4, 0, "1.5", 3), "invalid input syntax"));
    ck_assert_str_eq(param(PG_OID_FLOAT8, 0, "1e3", 3), "1e3");
    ck_assert_str_eq(param(PG_OID_NUMERIC, 0, "-12.50", 6), "(-12.50)");
    ck_assert_str_eq(param(PG_OID_BOOL, 0, "t", 1), "TRUE");
    ck_assert_str_eq(param(PG_OID_BOOL, 0, "off", 3), "FALSE");
    ck_assert_str_eq(param(PG_OID_TEXT, 0, NULL, -1), "NULL");
    ck_assert_ptr_nonnull(strstr(param(PG_OID_TEXT, 0, "a\0b", 3), "UTF-8"));
    ck_assert_ptr_nonnull(strstr(param(PG_OID_TEXT, 0, "\xff", 1), "UTF-8"));
    uint8_t i8[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    ck_assert_str_eq(param(PG_OID_INT8, 1, i8, 8), "(-2)");
    uint8_t i4[4] = {0, 0, 1, 0};
    ck_assert_str_eq(param(PG_OID_INT4, 1, i4, 4), "256");
    ck_assert_ptr_nonnull(strstr(param(PG_OID_INT4, 1, i4, 3), "invalid binary value"));
    double d = 0.25;
    uint64_t u;
    memcpy(&u, &d, 8);
    uint8_t f8[8];
    for (int i = 0; i < 8; i++)
        f8[i] = (uint8_t)(u >> (56 - 8 * i));
    ck_assert_str_eq(param(PG_OID_FLOAT8, 1, f8, 8), "0.25");
    /* numeric 1234.5678 in binary: ndigits 2, weight 0, sign +, dscale 4: 1234, 5678 */
    uint8_t nu[] = {0, 2, 0, 0, 0, 0, 0, 4, 0x04, 0xd2, 0x16, 0x2e};
    ck_assert_str_eq(param(PG_OID_NUMERIC, 1, nu, sizeof nu), "1234.5678");
    /* -0.0012: ndigits 1, weight -1, sign -, dscale 4: 12 */
    uint8_t nn[] = {0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 12};
    ck_assert_str_eq(param(PG_OID_NUMERIC, 1, nn, sizeof nn), "(-0.0012)");
}
END_TEST

START_TEST(test_substitute)
{
    char *p[] = {"'x'", "(-1)"};
    ss_buf_t out = SS_BUF_INIT;
    int *map = NULL;
    char err[SS_ERRSZ];
    const char *sql = "SELECT $1, '$2', \"$1\", $$ $2 $$ -- $2\n FROM v WHERE a -$2 = 1 /* $1 */";
    ck_assert_int_eq(pg_substitute(sql, 2, p, &out, &map, err, sizeof err), SS_OK);
    ck_assert_str_eq(ss_buf_cstr(&out),
                     "SELECT  'x' , '$2', \"$1\", $$ $2 $$ -- $2\n FROM v WHERE a - (-1)  = 1 /* $1 */");
    const char *at = strstr(ss_buf_cstr(&out), "(-1)");
    ck_assert_int_eq(map[at - ss_buf_cstr(&out)], (int)(strstr(sql, "-$2") - sql) + 1);
    ck_assert_int_eq(map[strstr(ss_buf_cstr(&out), "FROM") - ss_buf_cstr(&out)], (int)(strstr(sql, "FROM") - sql));
    free(map);
    ss_buf_reset(&out);
    ck_assert_int_eq(pg_substitute("SELECT $3", 2, p, &out, NULL, err, sizeof err), SS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "no parameter $3"));
    ck_assert_int_eq(pg_max_param("SELECT $2, $10, '$99'"), 10);
    ss_buf_free(&out);
}
END_TEST

START_TEST(test_classify_split)
{
    pg_cmd_t c;
#define CL(s) pg_classify(s, strlen(s), &c)
    CL("  begin transaction isolation level serializable");
    ck_assert_int_eq(c.kind, PG_CMD_BEGIN);
    CL("SET application_name = 'psql'");
    ck_assert_int_eq(c.kind, PG_CMD_SET);
    ck_assert_str_eq(c.name, "application_name");
    ck_assert_str_eq(c.value, "psql");
    CL("SET TIME ZONE 'UTC'");
    ck_assert_int_eq(c.kind, PG_CMD_SET);
    ck_assert_str_eq(c.name, "timezone");
    CL("SET batch_size = 10");
    ck_assert_int_eq(c.kind, PG_CMD_ENGINE);
    CL("SHOW VIEWS");
    ck_assert_int_eq(c.kind, PG_CMD_ENGINE);
    CL("show transaction isolation level");
    ck_assert_int_eq(c.kind, PG_CMD_SHOW);
    ck_assert_str_eq(c.name, "transaction_isolation");
    const char *cp = "COPY (SUBSCRIBE v WITH (limit = 1)) TO STDOUT WITH (FORMAT csv, HEADER)";
    CL(cp);
    ck_assert_int_eq(c.kind, PG_CMD_COPY);
    ck_assert(!strncmp(cp + c.inner_at, "SUBSCRIBE v WITH (limit = 1)", c.inner_len));
    ck_assert_int_eq(c.csv, 1);
    ck_assert_int_eq(c.header, 1);
    CL("COPY ev FROM STDIN");
    ck_assert_int_eq(c.kind, PG_CMD_ERROR);
    CL("DECLARE \"Cur\" NO SCROLL CURSOR WITHOUT HOLD FOR SUBSCRIBE v");
    ck_assert_int_eq(c.kind, PG_CMD_DECLARE);
    ck_assert_str_eq(c.name, "Cur");
    CL("FETCH FORWARD 10 FROM c WITH (timeout = '250ms')");
    ck_assert_int_eq(c.kind, PG_CMD_FETCH);
    ck_assert_int_eq(c.count, 10);
    ck_assert_int_eq(c.timeout_ms, 250);
    CL("FETCH ALL c");
    ck_assert_int_eq(c.count, -1);
    ck_assert_int_eq(c.timeout_ms, -1);
    CL("FETCH ALL c WITH (timeout = 'soon')");
    ck_assert_int_eq(c.kind, PG_CMD_ERROR);
    CL("SELECT c.relname FROM pg_catalog.pg_class c");
    ck_assert_int_eq(c.kind, PG_CMD_CATALOG);
    CL("select version()");
    ck_assert_int_eq(c.kind, PG_CMD_CATALOG);
    CL("SELECT version FROM v");
    ck_assert_int_eq(c.kind, PG_CMD_ENGINE);
    CL(" -- nothing\n ;");
    ck_assert_int_eq(c.kind, PG_CMD_EMPTY);
#undef CL
    size_t *st = NULL, *en = NULL;
    const char *q = "SELECT ';'; SELECT 2 -- ;\n; /* ; */";
    int n = pg_split(q, strlen(q), &st, &en);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq((int)en[0], 11);
    free(st);
    free(en);
}
END_TEST

static int cell(uint32_t oid, const char *text, const char *hex)
{
    ss_buf_t b = SS_BUF_INIT;
    if (pg_put_cell(&b, oid, 1, text) != SS_OK)
        return 0;
    char got[256] = "";
    for (size_t i = 4; i < b.len && i < 100; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%02x", (unsigned char)b.data[i]);
    ss_buf_free(&b);
    if (strcmp(got, hex))
        fprintf(stderr, "%s as %u: %s, wanted %s\n", text, oid, got, hex);
    return !strcmp(got, hex);
}

START_TEST(test_binary_cells)
{
    ck_assert(cell(PG_OID_INT8, "-2", "fffffffffffffffe"));
    ck_assert(cell(PG_OID_BOOL, "t", "01"));
    ck_assert(cell(PG_OID_FLOAT8, "0.25", "3fd0000000000000"));
    ck_assert(cell(PG_OID_NUMERIC, "1234.5678", "000200000000000404d2162e"));
    ck_assert(cell(PG_OID_NUMERIC, "-0.0012", "0001ffff40000004000c"));
    ck_assert(cell(PG_OID_NUMERIC, "100", "00010000000000000064"));
    ck_assert(cell(PG_OID_NUMERIC, "0.00", "0000000000000002"));
    ck_assert(cell(PG_OID_TEXT, "hé", "68c3a9"));
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(pg_put_cell(&b, PG_OID_INT8, 1, "abc"), SS_ERR_INVALID);
    ss_buf_free(&b);
}
END_TEST

/* ---- SCRAM: a client written from RFC 5802, checked with RFC 7677's vector ---- */

static void b64(const uint8_t *p, size_t n, char *out) { EVP_EncodeBlock((unsigned char *)out, p, (int)n); }

START_TEST(test_scram_rfc7677)
{
    /* RFC 7677: salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096, password "pencil" */
    uint8_t salt[16];
    EVP_DecodeBlock(salt, (const unsigned char *)"W22ZaJ0SNY7soEsUEjb6gQ==", 24);
    pg_scram_key_t keys[2];
    ck_assert_int_eq(pg_scram_derive("not-this-one", salt, 4096, &keys[0]), SS_OK);
    ck_assert_int_eq(pg_scram_derive("pencil", salt, 4096, &keys[1]), SS_OK);
    pg_scram_t sc = {keys, 2, salt, 4096, "", NULL, NULL, -1};
    ss_buf_t out = SS_BUF_INIT;
    char err[SS_ERRSZ];
    const char *first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    ck_assert_int_eq(pg_scram_first(&sc, (const uint8_t *)first, strlen(first), &out, err, sizeof err), SS_OK);
    ck_assert(!strncmp(ss_buf_cstr(&out), "r=rOprNGfwEbeRWgbNEkqO", 22));
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&out), ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
    /* the client's proof */
    char nonce[128];
    snprintf(nonce, sizeof nonce, "%.*s", (int)strcspn(ss_buf_cstr(&out) + 2, ","), ss_buf_cstr(&out) + 2);
    char final_wo[256], am[768];
    snprintf(final_wo, sizeof final_wo, "c=biws,r=%s", nonce);
    snprintf(am, sizeof am, "%s,%s,%s", first + 3, ss_buf_cstr(&out), final_wo);
    uint8_t salted[32], ck[32], sk[32], sig[32], proof[32];
    unsigned l = 32;
    PKCS5_PBKDF2_HMAC("pencil", 6, salt, 16, 4096, EVP_sha256(), 32, salted);
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ck, &l);
    SHA256(ck, 32, sk);
    HMAC(EVP_sha256(), sk, 32, (const unsigned char *)am, strlen(am), sig, &l);
    for (int i = 0; i < 32; i++)
        proof[i] = ck[i] ^ sig[i];
    char pb[64], fin[512];
    b64(proof, 32, pb);
    snprintf(fin, sizeof fin, "%s,p=%s", final_wo, pb);
    ss_buf_t sf = SS_BUF_INIT;
    ck_assert_int_eq(pg_scram_final(&sc, (const uint8_t *)fin, strlen(fin), &sf, err, sizeof err), SS_OK);
    ck_assert_int_eq(sc.matched, 1);
    /* the server's signature */
    uint8_t skey[32], ssig[32];
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, skey, &l);
    HMAC(EVP_sha256(), skey, 32, (const unsigned char *)am, strlen(am), ssig, &l);
    char sb[64], want[80];
    b64(ssig, 32, sb);
    snprintf(want, sizeof want, "v=%s", sb);
    ck_assert_str_eq(ss_buf_cstr(&sf), want);
    /* a wrong proof */
    fin[strlen(fin) - 5] ^= 1;
    ss_buf_reset(&sf);
    ck_assert_int_eq(pg_scram_final(&sc, (const uint8_t *)fin, strlen(fin), &sf, err, sizeof err) != SS_OK, 1);
    ck_assert_int_eq(sc.matched, -1);
    /* channel binding is not offered */
    const char *plus = "p=tls-server-end-point,,n=user,r=abc";
    ck_assert_int_ne(pg_scram_first(&sc, (const uint8_t *)plus, strlen(plus), &out, err, sizeof err), SS_OK);
    pg_scram_free(&sc);
    ss_buf_free(&out);
    ss_buf_free(&sf);
}
END_TEST

/* ---- a session over a socketpair ---- */

typedef struct sess_arg {
    pg_session_env_t env;
    int fd;
} sess_arg_t;

static void *session_thread(void *arg)
{
    sess_arg_t *a = arg;
    pg_session_run(&a->env, a->fd, "test");
    close(a->fd);
    return NULL;
}

static void send_msg(int fd, char type, const void *body, size_t n)
{
    uint8_t h[5] = {(uint8_t)type};
    put32(h + 1, (uint32_t)n + 4);
    ck_assert_int_eq(write(fd, h, 5), 5);
    if (n)
        ck_assert_int_eq(write(fd, body, n), (ssize_t)n);
}

/* Reads backend messages until ReadyForQuery; appends "T" "D" "C:tag" "E:state:pos:msg"... to log. */
static void read_until_ready(int fd, ss_buf_t *log)
{
    for (;;) {
        uint8_t h[5];
        size_t got = 0;
        while (got < 5) {
            ssize_t r = read(fd, h + got, 5 - got);
            ck_assert_int_gt(r, 0);
            got += (size_t)r;
        }
        uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
        char *b = calloc(len, 1);
        for (got = 0; got < len - 4;) {
            ssize_t r = read(fd, b + got, len - 4 - got);
            ck_assert_int_gt(r, 0);
            got += (size_t)r;
        }
        if (h[0] == 'C')
            ss_buf_printf(log, "C:%s ", b);
        else if (h[0] == 'E') {
            const char *state = "", *pos = "", *msg = "";
            for (char *p = b; *p; p += strlen(p) + 1) {
                if (*p == 'C')
                    state = p + 1;
                else if (*p == 'P')
                    pos = p + 1;
                else if (*p == 'M')
                    msg = p + 1;
            }
            ss_buf_printf(log, "E:%s:%s:%s ", state, pos, msg);
        } else if (h[0] != 'S' && h[0] != 'K' && h[0] != 'R')
            ss_buf_printf(log, "%c ", h[0]);
        free(b);
        if (h[0] == 'Z')
            return;
    }
}

START_TEST(test_session_socketpair)
{
    char *dir = tu_tmpdir();
    char db[1100];
    snprintf(db, sizeof db, "%s/s.db", dir);
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.catch_up = 1;
    o.max_latency_ms = 20;
    ss_engine_t *e = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_engine_open(&o, &e, err, sizeof err) == SS_OK, "%s", err);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    sess_arg_t a;
    memset(&a, 0, sizeof a);
    a.env.engine = e;
    a.env.idle_timeout_s = 30;
    a.env.io_timeout_s = 30;
    a.env.max_message = 1 << 20;
    a.env.pid = 77;
    a.fd = sv[1];
    pthread_t th;
    pthread_create(&th, NULL, session_thread, &a);
    uint8_t st[64];
    put32(st + 4, 196608);
    memcpy(st + 8, "user\0t\0\0", 8);
    put32(st, 16);
    ck_assert_int_eq(write(sv[0], st, 16), 16);
    ss_buf_t log = SS_BUF_INIT;
    read_until_ready(sv[0], &log);
    ck_assert_str_eq(ss_buf_cstr(&log), "Z ");
    const char *q = "CREATE STREAM ev (id INT KEY, v INT) WITH (topic='ev'); CREATE CONTINUOUS VIEW w AS "
                    "SELECT id, v FROM ev; INSERT INTO ev VALUES (1, 2); SELECT * FROM w; SELECT nope FROM w;";
    send_msg(sv[0], 'Q', q, strlen(q) + 1);
    ss_buf_reset(&log);
    read_until_ready(sv[0], &log);
    char want[512];
    snprintf(want, sizeof want, "C:CREATE STREAM C:CREATE VIEW C:INSERT 0 1 T D C:SELECT 1 E:42703:%d:unknown column "
             "\"nope\" Z ", (int)(strstr(q, "nope") - q) + 1);
    ck_assert_str_eq(ss_buf_cstr(&log), want);
    /* extended: Parse, Bind ($1 = 1), Describe portal, Execute, Sync */
    const char parse[] = "\0SELECT v FROM w WHERE id = $1\0\0\0";
    send_msg(sv[0], 'P', parse, sizeof parse - 1);
    uint8_t bind[32];
    size_t n = 0;
    memcpy(bind, "\0\0\0\0\0\1", 6), n = 6;
    put32(bind + n, 1), n += 4;
    bind[n++] = '1';
    bind[n++] = 0, bind[n++] = 0;
    send_msg(sv[0], 'B', bind, n);
    send_msg(sv[0], 'D', "P", 2);
    uint8_t ex[5] = {0, 0, 0, 0, 0};
    send_msg(sv[0], 'E', ex, 5);
    send_msg(sv[0], 'S', NULL, 0);
    ss_buf_reset(&log);
    read_until_ready(sv[0], &log);
    ck_assert_str_eq(ss_buf_cstr(&log), "1 2 T D C:SELECT 1 Z ");
    /* a malformed Bind (its parameter overruns the message) is a protocol error; Sync recovers */
    uint8_t bad[] = {0, 0, 0, 0, 0, 1, 0x7f, 0, 0, 0};
    send_msg(sv[0], 'B', bad, sizeof bad);
    send_msg(sv[0], 'E', ex, 5);
    send_msg(sv[0], 'S', NULL, 0);
    ss_buf_reset(&log);
    read_until_ready(sv[0], &log);
    ck_assert_msg(!strncmp(ss_buf_cstr(&log), "E:08P01::invalid Bind message", 29), "%s", ss_buf_cstr(&log));
    send_msg(sv[0], 'X', NULL, 0);
    pthread_join(th, NULL);
    close(sv[0]);
    ss_buf_free(&log);
    ss_engine_close(e);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

Suite *check_pgwire_suite(void)
{
    Suite *s = suite_create("pgwire");
    TCase *tc = tcase_create("protocol");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_decode_startup);
    tcase_add_test(tc, test_decode_bind_parse);
    tcase_add_test(tc, test_params);
    tcase_add_test(tc, test_substitute);
    tcase_add_test(tc, test_classify_split);
    tcase_add_test(tc, test_binary_cells);
    tcase_add_test(tc, test_scram_rfc7677);
    tcase_add_test(tc, test_session_socketpair);
    suite_add_tcase(s, tc);
    return s;
}
