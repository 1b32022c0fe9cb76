/*
 * pgwire_msg.c — PostgreSQL protocol 3.0 messages as bytes (pgwire.h): decoding
 * of every frontend message the server accepts, with bounds checks on each field
 * (these functions are the fuzz target tests/fuzz_pgwire.c), bound parameters
 * turned into SQL literals, and the encoders of backend messages with text and
 * binary cell formats (bool, int2/4/8, float4/8, numeric, text, json, oid).
 */
#include "pgwire.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- types ---- */

uint32_t pg_type_oid(ss_coltype_t t)
{
    switch (t) {
    case SS_COL_INT: return PG_OID_INT8;
    case SS_COL_REAL: return PG_OID_FLOAT8;
    case SS_COL_BOOL: return PG_OID_BOOL;
    case SS_COL_NUMERIC: return PG_OID_NUMERIC;
    case SS_COL_JSON: return PG_OID_JSON;
    default: return PG_OID_TEXT;
    }
}

int32_t pg_typmod(ss_coltype_t t, int ss_typmod)
{
    /* PostgreSQL's numeric typmod: ((precision << 16) | scale) + VARHDRSZ; ours has no header */
    return t == SS_COL_NUMERIC && ss_typmod >= 0 ? ss_typmod + 4 : -1;
}

int16_t pg_type_len(uint32_t oid)
{
    switch (oid) {
    case PG_OID_BOOL: case PG_OID_CHAR: return 1;
    case PG_OID_INT2: return 2;
    case PG_OID_INT4: case PG_OID_OID: case PG_OID_FLOAT4: case PG_OID_REGCLASS: case PG_OID_REGTYPE:
    case PG_OID_REGPROC: return 4;
    case PG_OID_INT8: case PG_OID_FLOAT8: return 8;
    case PG_OID_NAME: return 64;
    default: return -1;
    }
}

/* ---- a bounds-checked reader ---- */

typedef struct rd {
    const uint8_t *p;
    size_t n, at;
    const char *bad; /* what was malformed (first failure) */
} rd_t;

static int32_t rd_i32(rd_t *r, const char *what)
{
    if (r->bad || r->n - r->at < 4) {
        if (!r->bad)
            r->bad = what;
        return 0;
    }
    const uint8_t *q = r->p + r->at;
    r->at += 4;
    return (int32_t)((uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3]);
}

static int16_t rd_i16(rd_t *r, const char *what)
{
    if (r->bad || r->n - r->at < 2) {
        if (!r->bad)
            r->bad = what;
        return 0;
    }
    const uint8_t *q = r->p + r->at;
    r->at += 2;
    return (int16_t)((uint16_t)q[0] << 8 | q[1]);
}

static const char *rd_cstr(rd_t *r, const char *what)
{
    if (r->bad)
        return NULL;
    const uint8_t *z = memchr(r->p + r->at, 0, r->n - r->at);
    if (!z) {
        r->bad = what;
        return NULL;
    }
    const char *s = (const char *)r->p + r->at;
    r->at = (size_t)(z - r->p) + 1;
    return s;
}

static const uint8_t *rd_bytes(rd_t *r, size_t len, const char *what)
{
    if (r->bad || r->n - r->at < len) {
        if (!r->bad)
            r->bad = what;
        return NULL;
    }
    const uint8_t *s = r->p + r->at;
    r->at += len;
    return s;
}

static int rd_done(rd_t *r, const char *msg, char *err, size_t errsz)
{
    if (r->bad)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "invalid %s message: %s", msg, r->bad);
    if (r->at != r->n)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "invalid %s message: %zu bytes left over", msg, r->n - r->at);
    return SS_OK;
}

/* ---- decoders ---- */

int pg_decode_startup(const uint8_t *body, size_t n, pg_startup_t *out, char *err, size_t errsz)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, n, 0, NULL};
    uint32_t code = (uint32_t)rd_i32(&r, "protocol version");
    if (r.bad)
        return rd_done(&r, "startup", err, errsz);
    out->version = code;
    if (code == 80877103u) {
        out->kind = PG_START_SSL;
        return rd_done(&r, "SSLRequest", err, errsz);
    }
    if (code == 80877104u) {
        out->kind = PG_START_GSSENC;
        return rd_done(&r, "GSSENCRequest", err, errsz);
    }
    if (code == 80877102u) {
        out->kind = PG_START_CANCEL;
        out->cancel_pid = rd_i32(&r, "process ID");
        out->cancel_key = rd_i32(&r, "secret key");
        return rd_done(&r, "CancelRequest", err, errsz);
    }
    if (code >> 16 != 3)
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "unsupported frontend protocol %u.%u: server supports 3.0",
                         code >> 16, code & 0xffff);
    out->kind = PG_START_STARTUP;
    for (;;) {
        const char *k = rd_cstr(&r, "parameter name");
        if (!k)
            break;
        if (!*k)
            return rd_done(&r, "startup", err, errsz);
        const char *v = rd_cstr(&r, "parameter value");
        if (!v)
            break;
        if (out->npairs >= (int)SS_ARRAY_LEN(out->keys))
            return ss_seterr(err, errsz, SS_ERR_INVALID, "invalid startup message: more than %d parameters",
                             (int)SS_ARRAY_LEN(out->keys));
        out->keys[out->npairs] = k;
        out->values[out->npairs++] = v;
        if (!strcmp(k, "user"))
            out->user = v;
        else if (!strcmp(k, "database"))
            out->database = v;
        else if (!strcmp(k, "application_name"))
            out->application_name = v;
        else if (!strcmp(k, "options"))
            out->options = v;
    }
    if (!r.bad)
        r.bad = "missing terminator";
    return rd_done(&r, "startup", err, errsz);
}

int pg_decode_parse(const uint8_t *body, size_t n, pg_parse_msg_t *out, char *err, size_t errsz)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, n, 0, NULL};
    out->name = rd_cstr(&r, "statement name");
    out->query = rd_cstr(&r, "query string");
    int np = rd_i16(&r, "parameter count");
    if (!r.bad && np < 0)
        r.bad = "negative parameter count";
    if (!r.bad && np > 0) {
        if (!(out->types = calloc((size_t)np, sizeof *out->types)))
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        out->nparams = np;
        for (int i = 0; i < np; i++)
            out->types[i] = (uint32_t)rd_i32(&r, "parameter type");
    }
    int rc = rd_done(&r, "Parse", err, errsz);
    if (rc)
        pg_parse_msg_free(out);
    return rc;
}

void pg_parse_msg_free(pg_parse_msg_t *m)
{
    free(m->types);
    memset(m, 0, sizeof *m);
}

int pg_decode_bind(const uint8_t *body, size_t n, pg_bind_msg_t *out, char *err, size_t errsz)
{
    memset(out, 0, sizeof *out);
    rd_t r = {body, n, 0, NULL};
    out->portal = rd_cstr(&r, "portal name");
    out->stmt = rd_cstr(&r, "statement name");
    int nf = rd_i16(&r, "format count");
    if (!r.bad && nf < 0)
        r.bad = "negative format count";
    if (!r.bad && nf > 0 && !(out->fmts = calloc((size_t)nf, sizeof *out->fmts)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; !r.bad && i < nf; i++)
        out->fmts[out->nfmts++] = rd_i16(&r, "format code");
    int np = rd_i16(&r, "parameter count");
    if (!r.bad && np < 0)
        r.bad = "negative parameter count";
    if (!r.bad && np > 0) {
        out->vals = calloc((size_t)np, sizeof *out->vals);
        out->lens = calloc((size_t)np, sizeof *out->lens);
        if (!out->vals || !out->lens) {
            pg_bind_msg_free(out);
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        }
    }
    for (int i = 0; !r.bad && i < np; i++) {
        int32_t len = rd_i32(&r, "parameter length");
        if (len < -1 && !r.bad)
            r.bad = "negative parameter length";
        out->lens[i] = len;
        out->vals[i] = len >= 0 ? rd_bytes(&r, (size_t)len, "parameter value") : NULL;
        out->nparams = i + 1;
    }
    int nr = rd_i16(&r, "result format count");
    if (!r.bad && nr < 0)
        r.bad = "negative result format count";
    if (!r.bad && nr > 0 && !(out->rfmts = calloc((size_t)nr, sizeof *out->rfmts))) {
        pg_bind_msg_free(out);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; !r.bad && i < nr; i++)
        out->rfmts[out->nrfmts++] = rd_i16(&r, "result format code");
    for (int i = 0; !r.bad && i < out->nfmts; i++)
        if (out->fmts[i] != 0 && out->fmts[i] != 1)
            r.bad = "format code other than 0 (text) or 1 (binary)";
    for (int i = 0; !r.bad && i < out->nrfmts; i++)
        if (out->rfmts[i] != 0 && out->rfmts[i] != 1)
            r.bad = "result format code other than 0 (text) or 1 (binary)";
    if (!r.bad && out->nfmts > 1 && out->nfmts != out->nparams)
        r.bad = "format codes do not match the parameters";
    int rc = rd_done(&r, "Bind", err, errsz);
    if (rc)
        pg_bind_msg_free(out);
    return rc;
}

void pg_bind_msg_free(pg_bind_msg_t *m)
{
    free(m->fmts);
    free(m->vals);
    free(m->lens);
    free(m->rfmts);
    memset(m, 0, sizeof *m);
}

int pg_decode_target(const uint8_t *body, size_t n, char *which, const char **name, char *err, size_t errsz)
{
    rd_t r = {body, n, 0, NULL};
    const uint8_t *w = rd_bytes(&r, 1, "target type");
    *name = rd_cstr(&r, "name");
    *which = w ? (char)*w : 0;
    if (!r.bad && *which != 'S' && *which != 'P')
        r.bad = "target type other than 'S' or 'P'";
    return rd_done(&r, "Describe/Close", err, errsz);
}

int pg_decode_execute(const uint8_t *body, size_t n, const char **portal, int32_t *max_rows, char *err,
                      size_t errsz)
{
    rd_t r = {body, n, 0, NULL};
    *portal = rd_cstr(&r, "portal name");
    *max_rows = rd_i32(&r, "row limit");
    return rd_done(&r, "Execute", err, errsz);
}

int pg_decode_query(const uint8_t *body, size_t n, const char **sql, char *err, size_t errsz)
{
    rd_t r = {body, n, 0, NULL};
    *sql = rd_cstr(&r, "query string");
    return rd_done(&r, "Query", err, errsz);
}

int pg_decode_sasl_initial(const uint8_t *body, size_t n, const char **mech, const uint8_t **data, size_t *len,
                           char *err, size_t errsz)
{
    rd_t r = {body, n, 0, NULL};
    *mech = rd_cstr(&r, "mechanism");
    int32_t l = rd_i32(&r, "data length");
    if (!r.bad && l < -1)
        r.bad = "negative data length";
    *len = l > 0 ? (size_t)l : 0;
    *data = l > 0 ? rd_bytes(&r, (size_t)l, "data") : (const uint8_t *)"";
    return rd_done(&r, "SASLInitialResponse", err, errsz);
}

/* ---- parameters as SQL ---- */

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        int k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (c == 0 || k < 0 || (k == 1 && c < 0xC2) || i + (size_t)k >= n + (k ? 0 : 1))
            return 0;
        for (int j = 1; j <= k; j++)
            if ((s[i + (size_t)j] & 0xC0) != 0x80)
                return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

static void put_string_lit(ss_buf_t *out, const char *s, size_t n)
{
    ss_buf_putc(out, '\'');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            ss_buf_putc(out, '\'');
        ss_buf_putc(out, s[i]);
    }
    ss_buf_putc(out, '\'');
}

/* A decimal number (digits, one point, optional sign and exponent)? */
static int is_number(const char *s, int allow_frac)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    int digits = 0, point = 0;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits++;
        else if (*p == '.' && allow_frac && !point)
            point = 1;
        else
            break;
    }
    if (digits && allow_frac && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        int ed = 0;
        while (*p >= '0' && *p <= '9')
            p++, ed++;
        if (!ed)
            return 0;
    }
    return digits > 0 && !*p;
}

static void put_number(ss_buf_t *out, const char *s)
{
    if (*s == '+')
        s++;
    if (*s == '-') /* a space keeps "x -$1" from becoming a comment "x --1" */
        ss_buf_printf(out, "(%s)", s);
    else
        ss_buf_puts(out, s);
}

/* Binary numeric: ndigits, weight, sign, dscale, then base-10000 digits. */
static int numeric_from_binary(const uint8_t *v, int32_t len, ss_buf_t *out)
{
    if (len < 8)
        return SS_ERR_INVALID;
    int nd = (int16_t)be(v, 2), weight = (int16_t)be(v + 2, 2), sign = (int)be(v + 4, 2),
        dscale = (int16_t)be(v + 6, 2);
    if (nd < 0 || len != 8 + 2 * nd || dscale < 0 || dscale > 1000 || (sign != 0 && sign != 0x4000))
        return SS_ERR_INVALID;
    ss_buf_t t = SS_BUF_INIT;
    if (sign == 0x4000)
        ss_buf_putc(&t, '-');
    /* integer part: digit groups with weight >= 0 */
    if (weight < 0)
        ss_buf_putc(&t, '0');
    for (int w = 0; w <= weight; w++) {
        int d = w < nd ? (int)be(v + 8 + 2 * w, 2) : 0;
        if (d > 9999) {
            ss_buf_free(&t);
            return SS_ERR_INVALID;
        }
        ss_buf_printf(&t, w ? "%04d" : "%d", d);
    }
    if (dscale > 0) {
        ss_buf_putc(&t, '.');
        int written = 0;
        for (int w = weight + 1; written < dscale; w++) {
            int idx = w;
            int d = idx >= 0 && idx < nd ? (int)be(v + 8 + 2 * idx, 2) : 0;
            char g[8];
            snprintf(g, sizeof g, "%04d", d % 10000);
            for (int k = 0; k < 4 && written < dscale; k++, written++)
                ss_buf_putc(&t, g[k]);
        }
    }
    put_number(out, ss_buf_cstr(&t));
    ss_buf_free(&t);
    return SS_OK;
}

int pg_param_sql(uint32_t type, int format, const uint8_t *val, int32_t len, ss_buf_t *out, char *err,
                 size_t errsz)
{
    if (!val || len < 0)
        return ss_buf_puts(out, "NULL");
    char num[64];
    if (format == 1) { /* binary: decode the types we know into text first */
        switch (type) {
        case PG_OID_BOOL:
            if (len != 1)
                break;
            return ss_buf_puts(out, val[0] ? "TRUE" : "FALSE");
        case PG_OID_INT2: case PG_OID_INT4: case PG_OID_INT8: case PG_OID_OID: {
            int w = type == PG_OID_INT2 ? 2 : type == PG_OID_INT8 ? 8 : 4;
            if (len != w)
                break;
            uint64_t u = be(val, w);
            int64_t x = w == 2 ? (int16_t)u : w == 4 ? (type == PG_OID_OID ? (int64_t)(uint32_t)u : (int32_t)u)
                                                     : (int64_t)u;
            snprintf(num, sizeof num, "%lld", (long long)x);
            put_number(out, num);
            return SS_OK;
        }
        case PG_OID_FLOAT4: case PG_OID_FLOAT8: {
            double d;
            if (len == 4 && type == PG_OID_FLOAT4) {
                uint32_t u = (uint32_t)be(val, 4);
                float f;
                memcpy(&f, &u, 4);
                d = f;
            } else if (len == 8 && type == PG_OID_FLOAT8) {
                uint64_t u = be(val, 8);
                memcpy(&d, &u, 8);
            } else {
                break;
            }
            if (!isfinite(d))
                return ss_seterr(err, errsz, SS_ERR_INVALID, "parameter value %g cannot be used in SQL here", d);
            snprintf(num, sizeof num, "%.17g", d);
            put_number(out, num);
            return SS_OK;
        }
        case PG_OID_NUMERIC:
            if (numeric_from_binary(val, len, out) == SS_OK)
                return SS_OK;
            break;
        case PG_OID_JSONB:
            if (len < 1 || val[0] != 1)
                break;
            val++;
            len--;
            goto text;
        case PG_OID_TEXT: case PG_OID_VARCHAR: case PG_OID_NAME: case PG_OID_JSON: case PG_OID_UNKNOWN: case 0:
            goto text;
        default:
            return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "binary parameters of type %u are not supported "
                             "(send them as text)", type);
        }
        return ss_seterr(err, errsz, SS_ERR_INVALID, "invalid binary value for a parameter of type %u", type);
    }
text:
    if (!valid_utf8(val, (size_t)len))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "parameter value is not valid UTF-8 (or holds a NUL byte)");
    if (type == PG_OID_INT2 || type == PG_OID_INT4 || type == PG_OID_INT8 || type == PG_OID_OID ||
        type == PG_OID_FLOAT4 || type == PG_OID_FLOAT8 || type == PG_OID_NUMERIC) {
        if ((size_t)len >= sizeof num)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "numeric parameter too long (%d bytes)", (int)len);
        memcpy(num, val, (size_t)len);
        num[len] = 0;
        char *s = num;
        while (*s == ' ')
            s++;
        size_t l = strlen(s);
        while (l && s[l - 1] == ' ')
            s[--l] = 0;
        int isint = type == PG_OID_INT2 || type == PG_OID_INT4 || type == PG_OID_INT8 || type == PG_OID_OID;
        if (!is_number(s, !isint))
            return ss_seterr(err, errsz, SS_ERR_INVALID, "invalid input syntax for type %s: \"%s\"",
                             isint ? "integer" : type == PG_OID_NUMERIC ? "numeric" : "double precision", s);
        put_number(out, s);
        return SS_OK;
    }
    if (type == PG_OID_BOOL) {
        char b[8] = "";
        snprintf(b, sizeof b, "%.*s", (int)SS_MIN(len, 7), (const char *)val);
        if (ss_strcaseeq(b, "t") || ss_strcaseeq(b, "true") || ss_strcaseeq(b, "1") || ss_strcaseeq(b, "yes") ||
            ss_strcaseeq(b, "on"))
            return ss_buf_puts(out, "TRUE");
        if (ss_strcaseeq(b, "f") || ss_strcaseeq(b, "false") || ss_strcaseeq(b, "0") || ss_strcaseeq(b, "no") ||
            ss_strcaseeq(b, "off"))
            return ss_buf_puts(out, "FALSE");
        return ss_seterr(err, errsz, SS_ERR_INVALID, "invalid input syntax for type boolean");
    }
    put_string_lit(out, (const char *)val, (size_t)len);
    return out->data ? SS_OK : SS_ERR_NOMEM;
}

/* ---- encoders ---- */

void pg_msg_begin(ss_buf_t *b, char type, size_t *start)
{
    ss_buf_putc(b, type);
    *start = b->len;
    ss_buf_append(b, "\0\0\0\0", 4);
}

void pg_msg_end(ss_buf_t *b, size_t start)
{
    if (!b->data || b->len < start + 4)
        return;
    uint32_t n = (uint32_t)(b->len - start);
    uint8_t *p = (uint8_t *)b->data + start;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
}

void pg_put_i16(ss_buf_t *b, int16_t v)
{
    uint8_t p[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
    ss_buf_append(b, p, 2);
}

void pg_put_i32(ss_buf_t *b, int32_t v)
{
    uint32_t u = (uint32_t)v;
    uint8_t p[4] = {(uint8_t)(u >> 24), (uint8_t)(u >> 16), (uint8_t)(u >> 8), (uint8_t)u};
    ss_buf_append(b, p, 4);
}

void pg_put_cstr(ss_buf_t *b, const char *s)
{
    ss_buf_append(b, s ? s : "", strlen(s ? s : "") + 1);
}

static void put_be(ss_buf_t *b, uint64_t v, int n)
{
    uint8_t p[8];
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
    ss_buf_append(b, p, (size_t)n);
}

/* Decimal text -> binary numeric (base 10000 digit groups around the point). */
static int numeric_to_binary(ss_buf_t *b, const char *s)
{
    int neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (ss_strcaseeq(s, "NaN")) {
        pg_put_i32(b, 4 * 2);
        pg_put_i16(b, 0), pg_put_i16(b, 0), pg_put_i16(b, (int16_t)0xC000), pg_put_i16(b, 0);
        return SS_OK;
    }
    const char *dot = strchr(s, '.');
    size_t il = dot ? (size_t)(dot - s) : strlen(s), fl = dot ? strlen(dot + 1) : 0;
    for (size_t i = 0; i < il; i++)
        if (s[i] < '0' || s[i] > '9')
            return SS_ERR_INVALID;
    for (size_t i = 0; i < fl; i++)
        if (dot[1 + i] < '0' || dot[1 + i] > '9')
            return SS_ERR_INVALID;
    while (il > 0 && *s == '0')
        s++, il--;
    /* groups: integer part padded on the left to a multiple of 4, fraction padded on the right */
    size_t ipad = (4 - il % 4) % 4, ig = (il + ipad) / 4, fg = (fl + 3) / 4;
    if (ig + fg > 10000)
        return SS_ERR_INVALID;
    int16_t *d = calloc(ig + fg + 1, sizeof *d);
    if (!d)
        return SS_ERR_NOMEM;
    for (size_t g = 0; g < ig; g++)
        for (int k = 0; k < 4; k++) {
            size_t pos = g * 4 + (size_t)k;
            int dig = pos < ipad ? 0 : s[pos - ipad] - '0';
            d[g] = (int16_t)(d[g] * 10 + dig);
        }
    for (size_t g = 0; g < fg; g++)
        for (int k = 0; k < 4; k++) {
            size_t pos = g * 4 + (size_t)k;
            int dig = pos < fl ? dot[1 + pos] - '0' : 0;
            d[ig + g] = (int16_t)(d[ig + g] * 10 + dig);
        }
    /* strip leading and trailing zero groups */
    size_t lo = 0, hi = ig + fg;
    while (lo < hi && d[lo] == 0)
        lo++;
    while (hi > lo && d[hi - 1] == 0)
        hi--;
    int weight = (int)ig - 1 - (int)lo;
    pg_put_i32(b, (int32_t)(8 + 2 * (hi - lo)));
    pg_put_i16(b, (int16_t)(hi - lo));
    pg_put_i16(b, (int16_t)(hi > lo ? weight : 0));
    pg_put_i16(b, (int16_t)(neg && hi > lo ? 0x4000 : 0));
    pg_put_i16(b, (int16_t)fl);
    for (size_t g = lo; g < hi; g++)
        pg_put_i16(b, d[g]);
    free(d);
    return SS_OK;
}

int pg_put_cell(ss_buf_t *b, uint32_t oid, int format, const char *text)
{
    if (!text) {
        pg_put_i32(b, -1);
        return SS_OK;
    }
    size_t n = strlen(text);
    if (format == 0 || oid == PG_OID_TEXT || oid == PG_OID_VARCHAR || oid == PG_OID_NAME || oid == PG_OID_JSON ||
        oid == PG_OID_UNKNOWN) {
        pg_put_i32(b, (int32_t)n);
        ss_buf_append(b, text, n);
        return SS_OK;
    }
    char *end;
    errno = 0;
    switch (oid) {
    case PG_OID_BOOL:
        pg_put_i32(b, 1);
        ss_buf_putc(b, (char)(!strcmp(text, "t") || !strcmp(text, "true") || !strcmp(text, "1")));
        return SS_OK;
    case PG_OID_INT2: case PG_OID_INT4: case PG_OID_INT8: case PG_OID_OID: case PG_OID_REGCLASS: case PG_OID_REGTYPE:
    case PG_OID_REGPROC: {
        long long v = strtoll(text, &end, 10);
        if (*end || errno || !*text)
            return SS_ERR_INVALID;
        int w = oid == PG_OID_INT2 ? 2 : oid == PG_OID_INT8 ? 8 : 4;
        pg_put_i32(b, w);
        put_be(b, (uint64_t)v, w);
        return SS_OK;
    }
    case PG_OID_FLOAT4: case PG_OID_FLOAT8: {
        double d = ss_strcaseeq(text, "NaN") ? NAN : ss_strcaseeq(text, "Infinity") ? INFINITY
                 : ss_strcaseeq(text, "-Infinity") ? -INFINITY : strtod(text, &end);
        if (isfinite(d) && (*end || !*text))
            return SS_ERR_INVALID;
        if (oid == PG_OID_FLOAT4) {
            float f = (float)d;
            uint32_t u;
            memcpy(&u, &f, 4);
            pg_put_i32(b, 4);
            put_be(b, u, 4);
        } else {
            uint64_t u;
            memcpy(&u, &d, 8);
            pg_put_i32(b, 8);
            put_be(b, u, 8);
        }
        return SS_OK;
    }
    case PG_OID_NUMERIC: return numeric_to_binary(b, text);
    case PG_OID_JSONB:
        pg_put_i32(b, (int32_t)n + 1);
        ss_buf_putc(b, 1);
        ss_buf_append(b, text, n);
        return SS_OK;
    default:
        pg_put_i32(b, (int32_t)n); /* other types: their text is their binary form too (bytea aside) */
        ss_buf_append(b, text, n);
        return SS_OK;
    }
}
