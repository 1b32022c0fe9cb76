/*
 * state.c — implements ss_state.h: the per-operator SQLite state handle
 * (table prefix, prepared-statement cache), value/row binding, key and sort-key
 * encodings (NUMERIC included), row stores (each row once, found through a
 * (key, hash) index) and counted row identities, Z-set moves and the
 * injectable clock.
 */
#include "ss_state.h"
#include "ss_decimal.h"
#include "ss_time.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ss_state_t *ss_state_new(sqlite3 *db, int node_id, int nslots)
{
    ss_state_t *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->db = db;
    st->id = node_id;
    st->nslots = nslots;
    snprintf(st->prefix, sizeof st->prefix, "st_%d", node_id);
    st->stmt = calloc((size_t)(nslots > 0 ? nslots : 1), sizeof *st->stmt);
    if (!st->stmt) {
        free(st);
        return NULL;
    }
    return st;
}

void ss_state_destroy(ss_state_t *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->nslots; i++)
        sqlite3_finalize(st->stmt[i]);
    free(st->stmt);
    ss_buf_free(&st->scratch);
    free(st);
}

int ss_state_sqlerr(sqlite3 *db, char *err, size_t errsz, const char *what)
{
    return ss_seterr(err, errsz, SS_ERR_SQLITE, "%s: %s", what, db ? sqlite3_errmsg(db) : "no database");
}

int ss_state_exec(ss_state_t *st, char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    if (!sql)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
    int ret = SS_OK;
    if (rc != SQLITE_OK)
        ret = ss_seterr(err, errsz, SS_ERR_SQLITE, "state of node %d: %s (in: %.200s)", st->id,
                        msg ? msg : sqlite3_errstr(rc), sql);
    sqlite3_free(msg);
    sqlite3_free(sql);
    return ret;
}

sqlite3_stmt *ss_state_stmt(ss_state_t *st, int slot, char *err, size_t errsz, const char *fmt, ...)
{
    if (slot < 0 || slot >= st->nslots) {
        ss_seterr(err, errsz, SS_ERR_INTERNAL, "state of node %d: statement slot %d out of range", st->id, slot);
        return NULL;
    }
    sqlite3_stmt *s = st->stmt[slot];
    if (s) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return s;
    }
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    if (!sql) {
        ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
        ss_seterr(err, errsz, SS_ERR_SQLITE, "state of node %d: prepare %.200s: %s", st->id, sql,
                  sqlite3_errmsg(st->db));
        sqlite3_free(sql);
        return NULL;
    }
    sqlite3_free(sql);
    st->stmt[slot] = s;
    return s;
}

int ss_state_run(ss_state_t *st, sqlite3_stmt *s, char *err, size_t errsz)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        ;
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return ss_seterr(err, errsz, SS_ERR_SQLITE, "state of node %d: %s", st->id, sqlite3_errmsg(st->db));
    return SS_OK;
}

int ss_state_bind_value(sqlite3_stmt *s, int idx, const ss_value_t *v)
{
    int rc;
    switch (v->t) {
    case SS_INT: rc = sqlite3_bind_int64(s, idx, v->u.i); break;
    case SS_REAL: rc = sqlite3_bind_double(s, idx, v->u.r); break;
    case SS_TEXT: case SS_NUM: case SS_JSON: /* NUMERIC and JSON as their exact text */
        rc = sqlite3_bind_text(s, idx, v->u.str.s ? v->u.str.s : "", (int)v->u.str.n, SQLITE_TRANSIENT);
        break;
    case SS_TS: case SS_TSTZ: { /* their text: ordered (years 1..9999) and readable; no allocation */
        char b[SS_TS_CHARS];
        size_t n = ss_ts_chars(v->u.i, v->t == SS_TSTZ, 0, b);
        rc = sqlite3_bind_text(s, idx, b, (int)n, SQLITE_TRANSIENT);
        break;
    }
    case SS_DATE: case SS_IVL: {
        ss_buf_t b = SS_BUF_INIT;
        if (ss_val_to_text(v, &b))
            return SS_ERR_NOMEM;
        rc = sqlite3_bind_text(s, idx, ss_buf_cstr(&b), (int)b.len, SQLITE_TRANSIENT);
        ss_buf_free(&b);
        break;
    }
    default: rc = sqlite3_bind_null(s, idx); break;
    }
    return rc == SQLITE_OK ? SS_OK : SS_ERR_SQLITE;
}

int ss_state_bind_buf(sqlite3_stmt *s, int idx, const ss_buf_t *b)
{
    int rc = sqlite3_bind_blob(s, idx, b->len ? b->data : "", (int)b->len, SQLITE_TRANSIENT);
    return rc == SQLITE_OK ? SS_OK : SS_ERR_SQLITE;
}

int ss_state_bind_row(sqlite3_stmt *s, int idx, const ss_row_t *r, ss_buf_t *scratch)
{
    ss_buf_reset(scratch);
    int rc = ss_row_encode(r, scratch);
    return rc ? rc : ss_state_bind_buf(s, idx, scratch);
}

ss_value_t ss_state_column_value(sqlite3_stmt *s, int col)
{
    switch (sqlite3_column_type(s, col)) {
    case SQLITE_INTEGER: return ss_val_int(sqlite3_column_int64(s, col));
    case SQLITE_FLOAT: return ss_val_real(sqlite3_column_double(s, col));
    case SQLITE_TEXT: {
        const char *p = (const char *)sqlite3_column_text(s, col);
        return ss_val_text_ref(p ? p : "", (size_t)sqlite3_column_bytes(s, col));
    }
    case SQLITE_BLOB: {
        const char *p = sqlite3_column_blob(s, col);
        return ss_val_text_ref(p ? p : "", (size_t)sqlite3_column_bytes(s, col));
    }
    default: return ss_val_null();
    }
}

int ss_state_column_as(sqlite3_stmt *s, int col, ss_coltype_t t, ss_value_t *out, char **owned)
{
    *owned = NULL;
    *out = ss_state_column_value(s, col);
    if (out->t != SS_TEXT || !(ss_coltype_is_time(t) || t == SS_COL_INTERVAL))
        return SS_OK;
    char err[128];
    ss_value_t v;
    int rc = ss_val_coerce(out, t, &v, owned, err, sizeof err);
    if (!rc)
        *out = v;
    return rc;
}

int ss_state_column_row(sqlite3_stmt *s, int col, ss_row_t **out)
{
    const void *p = sqlite3_column_blob(s, col);
    int n = sqlite3_column_bytes(s, col);
    return ss_row_decode(p ? p : "", (size_t)n, out);
}

int ss_state_collect_rows(sqlite3_stmt *q, int row_col, int w_col, int64_t w, ss_zset_t *out)
{
    int rc = SS_OK;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        ss_row_t *r;
        rc = ss_state_column_row(q, row_col, &r);
        if (!rc)
            rc = ss_zset_add(out, r, w_col >= 0 ? sqlite3_column_int64(q, w_col) : w);
    }
    sqlite3_reset(q);
    return rc;
}

/* The key form of a NUMERIC (normalised keys): an integral value that fits is an INT, a value a
 * double holds exactly (its shortest form is the decimal) a REAL, so that 10.00 meets 10 and 2.50
 * meets 2.5 (REAL or NUMERIC) as PostgreSQL's '=' says; otherwise the decimal without trailing
 * zeros (1.50 and 1.5 are one key). buf (at least n + 2 bytes) holds the text. */
static ss_value_t num_key(const ss_value_t *v, char *buf, size_t bufsz)
{
    size_t n = v->u.str.n;
    if (n + 2 > bufsz)
        return *v;
    memcpy(buf, v->u.str.s, n);
    buf[n] = 0;
    char *dot = strchr(buf, '.');
    if (dot) {
        while (n > 0 && buf[n - 1] == '0')
            buf[--n] = 0;
        if (buf[n - 1] == '.')
            buf[--n] = 0;
    }
    if (!strcmp(buf, "-0"))
        strcpy(buf, "0");
    if (!strchr(buf, '.')) {
        errno = 0;
        char *end;
        long long x = strtoll(buf, &end, 10);
        if (!*end && !errno)
            return ss_val_int(x);
    }
    double d = strtod(buf, NULL);
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    if (!strcmp(tmp, buf))
        return ss_val_real(d);
    return ss_val_num_ref(buf, n);
}

int ss_state_encode_cols(const ss_row_t *r, const int *cols, int n, int normalise, ss_buf_t *out,
                         int *has_null)
{
    ss_row_t *k = ss_row_new(n);
    if (!k)
        return SS_ERR_NOMEM;
    int rc = SS_OK, nul = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (cols[i] < 0 || cols[i] >= r->n) {
            rc = SS_ERR_INVALID;
            break;
        }
        ss_value_t v = r->v[cols[i]];
        if (v.t == SS_NULL)
            nul = 1;
        char nb[128];
        if (normalise && v.t == SS_NUM)
            v = num_key(&v, nb, sizeof nb);
        if (normalise && v.t == SS_REAL && v.u.r == floor(v.u.r) && fabs(v.u.r) < 9.2e18)
            v = ss_val_int((int64_t)v.u.r);
        rc = ss_row_set(k, i, &v);
    }
    if (!rc)
        rc = ss_row_encode(k, out);
    ss_row_free(k);
    if (has_null)
        *has_null = nul;
    return rc;
}

static void put_be64(unsigned char *p, uint64_t x)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(x & 0xff);
        x >>= 8;
    }
}

/* An order-preserving double: sign-flipped bits, big-endian. */
static void put_double_key(unsigned char *p, double d)
{
    if (d == 0.0)
        d = 0.0; /* -0.0 sorts with 0.0 */
    if (isnan(d))
        d = -INFINITY;
    uint64_t bits;
    memcpy(&bits, &d, 8);
    put_be64(p, (bits >> 63) ? ~bits : bits | 0x8000000000000000ULL);
}

/* NUMERIC: 0x02, the order-preserving double of its value (so NUMERICs sort among INTs and
 * REALs by value), then 0x02 and the exact value, order-preserving: a class byte (negative 0x01,
 * zero 0x02, positive 0x03), the decimal exponent (biased, big-endian) and the significant
 * digits each + 1, terminated by 0x00 — for negatives every byte after the class inverted.
 * 1.5 and 1.50 get one key (the same number). */
static int numeric_sortkey(ss_buf_t *out, const ss_value_t *v)
{
    ss_dec_t d = SS_DEC_INIT;
    char e2[64];
    unsigned char head[10];
    head[0] = 0x02;
    if (ss_dec_parse(v->u.str.s, v->u.str.n, &d, e2, sizeof e2)) { /* not a number: by its text */
        put_double_key(head + 1, 0.0);
        int rc = ss_buf_append(out, head, 9);
        unsigned char m = 0x03;
        rc = rc ? rc : ss_buf_append(out, &m, 1);
        return rc ? rc : ss_buf_append(out, v->u.str.s, v->u.str.n);
    }
    put_double_key(head + 1, ss_dec_to_double(&d));
    head[9] = 0x02;
    int rc = ss_buf_append(out, head, 10);
    int hi = d.n - 1, lo = 0; /* significant digits: d[hi] down to d[lo] */
    while (hi >= 0 && d.d[hi] == 0)
        hi--;
    while (lo <= hi && d.d[lo] == 0)
        lo++;
    unsigned char cls = hi < 0 ? 0x02 : d.neg ? 0x01 : 0x03;
    if (!rc)
        rc = ss_buf_append(out, &cls, 1);
    size_t at = out->len;
    if (!rc && hi >= 0) {
        int32_t exp10 = (int32_t)(hi - d.scale); /* weight of the leading digit */
        unsigned char eb[4];
        uint32_t be = (uint32_t)exp10 ^ 0x80000000u;
        for (int k = 3; k >= 0; k--, be >>= 8)
            eb[k] = (unsigned char)(be & 0xff);
        rc = ss_buf_append(out, eb, 4);
        for (int k = hi; k >= lo && !rc; k--) {
            unsigned char c = (unsigned char)(d.d[k] + 1);
            rc = ss_buf_append(out, &c, 1);
        }
        unsigned char z = 0x00;
        if (!rc)
            rc = ss_buf_append(out, &z, 1);
        for (size_t k = at; !rc && d.neg && k < out->len; k++)
            out->data[k] = (char)~(unsigned char)out->data[k];
    }
    ss_dec_free(&d);
    return rc;
}

/* Encoding: NULL = 0x01; number = 0x02, 8 bytes order-preserving double, then
 * 0x00 + 8 bytes biased int64 for INT, 0x01 for REAL (ss_val_cmp puts INT
 * before an equal REAL) or 0x02 + the exact NUMERIC (numeric_sortkey); text,
 * JSON = 0x03, bytes with 0x00 escaped as 0x00 0xFF, terminated by 0x00 0x00;
 * timestamp/date = 0x04, biased big-endian µs, a type byte; interval = 0x05,
 * biased span, then its fields. desc inverts every byte of the value's encoding. */
int ss_state_sortkey(ss_buf_t *out, const ss_value_t *v, int desc)
{
    size_t start = out->len;
    unsigned char tmp[18];
    int rc = SS_OK;
    if (v->t == SS_NULL) {
        tmp[0] = 0x01;
        rc = ss_buf_append(out, tmp, 1);
    } else if (v->t == SS_NUM) {
        rc = numeric_sortkey(out, v);
    } else if (v->t == SS_INT || v->t == SS_REAL) {
        double d = v->t == SS_INT ? (double)v->u.i : v->u.r;
        if (d == 0.0)
            d = 0.0; /* -0.0 sorts with 0.0 */
        if (isnan(d))
            d = -INFINITY;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        bits = (bits >> 63) ? ~bits : bits | 0x8000000000000000ULL;
        tmp[0] = 0x02;
        put_be64(tmp + 1, bits);
        if (v->t == SS_INT) {
            tmp[9] = 0x00;
            put_be64(tmp + 10, (uint64_t)v->u.i ^ 0x8000000000000000ULL);
            rc = ss_buf_append(out, tmp, 18);
        } else {
            tmp[9] = 0x01;
            rc = ss_buf_append(out, tmp, 10);
        }
    } else if (ss_vtype_is_time(v->t)) { /* 0x04, instant, then DATE < TIMESTAMP < TIMESTAMPTZ */
        tmp[0] = 0x04;
        put_be64(tmp + 1, (uint64_t)ss_val_time_us(v) ^ 0x8000000000000000ULL);
        tmp[9] = (unsigned char)(v->t == SS_DATE ? 0 : v->t == SS_TS ? 1 : 2);
        rc = ss_buf_append(out, tmp, 10);
    } else if (v->t == SS_IVL) { /* 0x05, span (saturating), then months, days, µs as ss_val_cmp breaks ties */
        tmp[0] = 0x05;
        put_be64(tmp + 1, (uint64_t)ss_interval_span_us(&v->u.iv) ^ 0x8000000000000000ULL);
        rc = ss_buf_append(out, tmp, 9);
        unsigned char f[16];
        put_be64(f, ((uint64_t)(uint32_t)((uint32_t)v->u.iv.months ^ 0x80000000u) << 32) |
                        (uint32_t)((uint32_t)v->u.iv.days ^ 0x80000000u));
        put_be64(f + 8, (uint64_t)v->u.iv.us ^ 0x8000000000000000ULL);
        if (!rc)
            rc = ss_buf_append(out, f, 16);
    } else {
        tmp[0] = 0x03;
        rc = ss_buf_append(out, tmp, 1);
        for (size_t i = 0; i < v->u.str.n && !rc; i++) {
            unsigned char c = (unsigned char)v->u.str.s[i];
            if (c == 0) {
                unsigned char esc[2] = {0x00, 0xFF};
                rc = ss_buf_append(out, esc, 2);
            } else
                rc = ss_buf_append(out, &c, 1);
        }
        unsigned char term[2] = {0x00, 0x00};
        if (!rc)
            rc = ss_buf_append(out, term, 2);
    }
    if (!rc && desc)
        for (size_t i = start; i < out->len; i++)
            out->data[i] = (char)~(unsigned char)out->data[i];
    return rc;
}

int ss_state_sortkey_row(ss_buf_t *out, const ss_row_t *r)
{
    for (int i = 0; i < r->n; i++) {
        int rc = ss_state_sortkey(out, &r->v[i], 0);
        if (rc)
            return rc;
    }
    return SS_OK;
}

int ss_state_zset_move(ss_zset_t *out, ss_zset_t *src)
{
    int stays = out->n == 0 && src->consolidated; /* moved into an empty set: still consolidated */
    int rc = SS_OK;
    for (size_t i = 0; i < src->n; i++) {
        if (!rc)
            rc = ss_zset_add(out, src->e[i].row, src->e[i].w);
        else
            ss_row_free(src->e[i].row);
        src->e[i].row = NULL;
    }
    if (!rc && stays)
        out->consolidated = 1;
    src->n = 0;
    src->consolidated = 1;
    return rc;
}

/* one clock for operators and NOW() (ss_time.h) */
int64_t ss_state_now_ms(void) { return ss_clock_us() / SS_USEC_PER_MS; }
void ss_state_set_now_ms(int64_t ms) { ss_clock_set_us(ms * SS_USEC_PER_MS); }

int ss_state_quote_ident(ss_buf_t *out, const char *name)
{
    int rc = ss_buf_putc(out, '"');
    for (const char *p = name; *p && !rc; p++)
        rc = *p == '"' ? ss_buf_puts(out, "\"\"") : ss_buf_putc(out, *p);
    return rc ? rc : ss_buf_putc(out, '"');
}

static void bind_key(sqlite3_stmt *s, int idx, const ss_buf_t *k)
{
    sqlite3_bind_blob(s, idx, k && k->len ? k->data : "", k ? (int)k->len : 0, SQLITE_STATIC);
}

int ss_state_hcount_create(ss_state_t *st, const char *name, char *err, size_t errsz)
{
    return ss_state_exec(st, err, errsz,
                         "CREATE TABLE IF NOT EXISTS %s_%s(k BLOB NOT NULL, h1 INTEGER NOT NULL, h2 INTEGER NOT NULL, "
                         "n INTEGER NOT NULL, PRIMARY KEY(k, h1, h2)) WITHOUT ROWID",
                         st->prefix, name);
}

int ss_state_hcount_add(ss_state_t *st, int slot, const char *name, const ss_buf_t *k, const ss_row_t *row,
                        int64_t w, int64_t *oldn, int64_t *newn, char *err, size_t errsz)
{
    ss_buf_reset(&st->scratch);
    if (ss_row_encode(row, &st->scratch))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int64_t h1 = ss_state_row_hash(st->scratch.data, st->scratch.len);
    int64_t h2 = (int64_t)ss_hash64(st->scratch.data, st->scratch.len, 0x0a5c11ed0a5c11edULL);
    if (w > 0 && !oldn && !newn) { /* adding to a count that is never negative: no need to read it back */
        sqlite3_stmt *a = ss_state_stmt(st, slot + 2, err, errsz,
                                        "INSERT INTO %s_%s(k, h1, h2, n) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(k, h1, h2) "
                                        "DO UPDATE SET n = n + excluded.n",
                                        st->prefix, name);
        if (!a)
            return SS_ERR_SQLITE;
        bind_key(a, 1, k);
        sqlite3_bind_int64(a, 2, h1);
        sqlite3_bind_int64(a, 3, h2);
        sqlite3_bind_int64(a, 4, w);
        return ss_state_run(st, a, err, errsz);
    }
    sqlite3_stmt *s = ss_state_stmt(st, slot, err, errsz,
                                    "INSERT INTO %s_%s(k, h1, h2, n) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(k, h1, h2) "
                                    "DO UPDATE SET n = n + excluded.n RETURNING n",
                                    st->prefix, name);
    if (!s)
        return SS_ERR_SQLITE;
    bind_key(s, 1, k);
    sqlite3_bind_int64(s, 2, h1);
    sqlite3_bind_int64(s, 3, h2);
    sqlite3_bind_int64(s, 4, w);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        return ss_state_sqlerr(st->db, err, errsz, "counted identities");
    }
    int64_t n = sqlite3_column_int64(s, 0);
    int rc = ss_state_run(st, s, err, errsz);
    if (rc)
        return rc;
    if (oldn)
        *oldn = n - w;
    if (newn)
        *newn = n;
    if (n != 0)
        return SS_OK;
    s = ss_state_stmt(st, slot + 1, err, errsz, "DELETE FROM %s_%s WHERE k = ?1 AND h1 = ?2 AND h2 = ?3", st->prefix,
                      name);
    if (!s)
        return SS_ERR_SQLITE;
    bind_key(s, 1, k);
    sqlite3_bind_int64(s, 2, h1);
    sqlite3_bind_int64(s, 3, h2);
    return ss_state_run(st, s, err, errsz);
}

int ss_state_cluster_key(const ss_row_t *r, ss_buf_t *out)
{
    size_t at = out->len;
    int rc = r->n > 0 ? ss_state_sortkey(out, &r->v[0], 0) : SS_OK;
    if (!rc && out->len - at > 24)
        out->len = at + 24;
    return rc;
}

int64_t ss_state_row_hash(const void *enc, size_t n)
{
    return (int64_t)ss_hash64(enc, n, 0x5eedc0de5eedc0deULL);
}

int ss_state_rows_create(ss_state_t *st, const char *name, char *err, size_t errsz)
{
    return ss_state_exec(st, err, errsz,
                         "CREATE TABLE IF NOT EXISTS %s_%s(id INTEGER PRIMARY KEY, k BLOB NOT NULL, "
                         "h INTEGER NOT NULL, row BLOB NOT NULL, n INTEGER NOT NULL);"
                         "CREATE INDEX IF NOT EXISTS %s_%s_kh ON %s_%s(k, h);",
                         st->prefix, name, st->prefix, name, st->prefix, name);
}

/* Looks (k, row encoded in st->scratch, hash h) up: *id and *n when found (*id = 0 when not). */
static int rows_find(ss_state_t *st, int slot, const char *name, const ss_buf_t *k, int64_t h, int64_t *id,
                     int64_t *n, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(st, slot, err, errsz, "SELECT id, n, row FROM %s_%s WHERE k = ?1 AND h = ?2",
                                    st->prefix, name);
    if (!q)
        return SS_ERR_SQLITE;
    bind_key(q, 1, k);
    sqlite3_bind_int64(q, 2, h);
    *id = 0;
    *n = 0;
    int sr;
    while ((sr = sqlite3_step(q)) == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(q, 2);
        size_t len = (size_t)sqlite3_column_bytes(q, 2);
        if (len == st->scratch.len && (!len || memcmp(p, st->scratch.data, len) == 0)) {
            *id = sqlite3_column_int64(q, 0);
            *n = sqlite3_column_int64(q, 1);
            break;
        }
    }
    sqlite3_reset(q);
    if (sr != SQLITE_ROW && sr != SQLITE_DONE)
        return ss_state_sqlerr(st->db, err, errsz, "row store lookup");
    return SS_OK;
}

int ss_state_rows_add(ss_state_t *st, int slot, const char *name, const ss_buf_t *k, const ss_row_t *row,
                      int64_t w, int64_t *oldn, int64_t *newn, char *err, size_t errsz)
{
    ss_buf_reset(&st->scratch);
    if (ss_row_encode(row, &st->scratch))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int64_t h = ss_state_row_hash(st->scratch.data, st->scratch.len), id, n;
    int rc = rows_find(st, slot, name, k, h, &id, &n, err, errsz);
    if (rc)
        return rc;
    if (oldn)
        *oldn = n;
    if (newn)
        *newn = n + w;
    if (w == 0)
        return SS_OK;
    sqlite3_stmt *s;
    if (!id) {
        s = ss_state_stmt(st, slot + 1, err, errsz, "INSERT INTO %s_%s(k, h, row, n) VALUES(?1, ?2, ?3, ?4)",
                          st->prefix, name);
        if (!s)
            return SS_ERR_SQLITE;
        bind_key(s, 1, k);
        sqlite3_bind_int64(s, 2, h);
        sqlite3_bind_blob(s, 3, st->scratch.len ? st->scratch.data : "", (int)st->scratch.len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, w);
    } else if (n + w != 0) {
        s = ss_state_stmt(st, slot + 2, err, errsz, "UPDATE %s_%s SET n = ?1 WHERE id = ?2", st->prefix, name);
        if (!s)
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(s, 1, n + w);
        sqlite3_bind_int64(s, 2, id);
    } else {
        s = ss_state_stmt(st, slot + 3, err, errsz, "DELETE FROM %s_%s WHERE id = ?1", st->prefix, name);
        if (!s)
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(s, 1, id);
    }
    return ss_state_run(st, s, err, errsz);
}

int ss_state_zset_consolidated(const ss_zset_t *in, ss_zset_t *z)
{
    int rc = ss_zset_extend(z, in, 1);
    if (!rc)
        rc = ss_zset_consolidate(z);
    return rc;
}
