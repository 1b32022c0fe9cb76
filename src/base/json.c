/*
 * json.c — implements ss_json.h: a strict recursive-descent JSON parser that
 * builds a read-only DOM in one arena per document, lookups, and a writer.
 *
 * Containers collect their children on two scratch stacks (values, members)
 * shared by the whole parse and copy them into the arena when they close, so
 * every node is allocated exactly once. Recursion depth is bounded by
 * max_depth; every error records the byte offset where it was detected.
 * ss_json_scan_flat reads the commonest message, a flat object of plain
 * scalars, into members on the caller's stack without a document.
 */
#include "ss_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
} chunk_t;

struct ss_json_doc {
    chunk_t *chunks;
    chunk_t *first;  /* the chunk allocated with the document (not freed on its own) */
    size_t next_cap; /* size of the next chunk: starts near the input size, doubles to 32 KiB */
    ss_json_t root;
};

static void *arena_alloc(ss_json_doc_t *d, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    chunk_t *c = d->chunks;
    if (!c || c->cap - c->used < n) {
        size_t normal = d->next_cap, cap = n > normal ? n : normal;
        chunk_t *nc = malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        if (c && n > normal) { /* big block: keep filling the current chunk afterwards */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            d->chunks = nc;
            if (d->next_cap < 32768)
                d->next_cap *= 2;
        }
        c = nc;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

/* ---- parser state ---- */
typedef struct parser {
    const unsigned char *s, *e, *p;
    int depth, max_depth;
    ss_json_doc_t *doc;
    ss_json_t *vals;          /* scratch stack for array items (starts as vals0) */
    size_t nvals, capvals;
    ss_json_member_t *mems;   /* scratch stack for object members (starts as mems0) */
    size_t nmems, capmems;
    ss_json_t vals0[16];      /* small documents need no heap scratch at all */
    ss_json_member_t mems0[16];
    size_t errpos;
    char *err;
    size_t errsz;
    int code;
} parser_t;

static int fail(parser_t *ps, const unsigned char *at, int code, const char *fmt, const char *arg)
{
    ps->errpos = (size_t)(at - ps->s);
    ps->code = code;
    if (ps->err && ps->errsz) {
        char what[200];
        snprintf(what, sizeof what, fmt, arg ? arg : "");
        snprintf(ps->err, ps->errsz, "byte %zu: %s", ps->errpos, what);
    }
    return code;
}

static int fail_char(parser_t *ps, const char *expect)
{
    if (ps->p >= ps->e)
        return fail(ps, ps->p, SS_ERR_INVALID, "unexpected end of input (expected %s)", expect);
    char msg[160];
    unsigned char c = *ps->p;
    if (c >= 0x20 && c < 0x7f)
        snprintf(msg, sizeof msg, "unexpected '%c' (expected %s)", c, expect);
    else
        snprintf(msg, sizeof msg, "unexpected byte 0x%02x (expected %s)", c, expect);
    return fail(ps, ps->p, SS_ERR_INVALID, "%s", msg);
}

static void skip_ws(parser_t *ps)
{
    while (ps->p < ps->e && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* Length of the UTF-8 sequence at p (<= e), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *e)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; min = 0x10000; }
    else
        return 0;
    if ((size_t)(e - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int ss_json_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        size_t k = utf8_seq(p, e);
        if (!k)
            return 0;
        p += k;
    }
    return 1;
}

static size_t put_utf8(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xc0 | cp >> 6); o[1] = (unsigned char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

static int hex4(const unsigned char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return 0;
    }
    *out = v;
    return 1;
}

/* \uXXXX (with a following low surrogate when XXXX is a high one) at ps->p
 * (pointing at 'u'); writes UTF-8 to *o. */
static int parse_uescape(parser_t *ps, unsigned char **o)
{
    const unsigned char *at = ps->p - 1;
    uint32_t cp, lo;
    if (ps->e - ps->p < 5 || !hex4(ps->p + 1, &cp))
        return fail(ps, at, SS_ERR_INVALID, "invalid \\u escape%s", NULL);
    ps->p += 5;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail(ps, at, SS_ERR_INVALID, "lone low surrogate in \\u escape%s", NULL);
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (ps->e - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || !hex4(ps->p + 2, &lo) ||
            lo < 0xdc00 || lo > 0xdfff)
            return fail(ps, at, SS_ERR_INVALID, "high surrogate not followed by a low surrogate%s", NULL);
        ps->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    *o += put_utf8(*o, cp);
    return SS_OK;
}

/* Parses a string at ps->p (the opening quote) into the arena. */
static int parse_string(parser_t *ps, const char **out, size_t *outn)
{
    const unsigned char *start = ++ps->p, *q = start;
    while (q < ps->e && *q != '"') /* find the end: decoded text is never longer */
        q += (*q == '\\' && q + 1 < ps->e) ? 2 : 1;
    if (q >= ps->e)
        return fail(ps, start - 1, SS_ERR_INVALID, "unterminated string%s", NULL);
    unsigned char *buf = arena_alloc(ps->doc, (size_t)(q - start) + 1), *o = buf;
    if (!buf)
        return fail(ps, ps->p, SS_ERR_NOMEM, "out of memory%s", NULL);
    while (*ps->p != '"') {
        unsigned c = *ps->p;
        if (c >= 0x20 && c < 0x80 && c != '\\') { /* plain ASCII: itself (most text) */
            *o++ = (unsigned char)c;
            ps->p++;
            continue;
        }
        if (c < 0x20)
            return fail(ps, ps->p, SS_ERR_INVALID, "control character in string%s", NULL);
        if (c == '\\') {
            unsigned char x = *++ps->p;
            if (x == 'u') {
                int rc = parse_uescape(ps, &o);
                if (rc)
                    return rc;
                continue;
            }
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *map = x ? strchr(from, x) : NULL;
            if (!map)
                return fail(ps, ps->p - 1, SS_ERR_INVALID, "invalid escape in string%s", NULL);
            *o++ = (unsigned char)to[map - from];
            ps->p++;
            continue;
        }
        size_t k = utf8_seq(ps->p, ps->e);
        if (!k)
            return fail(ps, ps->p, SS_ERR_INVALID, "invalid UTF-8 in string%s", NULL);
        memcpy(o, ps->p, k);
        o += k;
        ps->p += k;
    }
    ps->p++;
    *o = 0;
    *out = (const char *)buf;
    *outn = (size_t)(o - buf);
    return SS_OK;
}

static int parse_number(parser_t *ps, ss_json_t *v)
{
    const unsigned char *st = ps->p, *p = ps->p, *e = ps->e;
    int is_int = 1;
    if (p < e && *p == '-')
        p++;
    if (p >= e || *p < '0' || *p > '9')
        return fail(ps, p, SS_ERR_INVALID, "invalid number%s", NULL);
    if (*p == '0')
        p++;
    else
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    if (p < e && *p == '.') {
        is_int = 0;
        if (++p >= e || *p < '0' || *p > '9')
            return fail(ps, p, SS_ERR_INVALID, "digit expected after '.'%s", NULL);
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        is_int = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return fail(ps, p, SS_ERR_INVALID, "digit expected in exponent%s", NULL);
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    ps->p = p;
    if (is_int) {
        const unsigned char *d = st + (*st == '-');
        uint64_t acc = 0, lim = *st == '-' ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        int ok = 1;
        for (; d < p && ok; d++) {
            unsigned dig = *d - '0';
            if (acc > (lim - dig) / 10)
                ok = 0;
            else
                acc = acc * 10 + dig;
        }
        if (ok) {
            v->t = SS_JSON_INT;
            v->u.i = *st == '-' ? (int64_t)(0 - acc) : (int64_t)acc;
            return SS_OK;
        }
    }
    size_t n = (size_t)(p - st);
    char small[64], *tmp = n < sizeof small ? small : malloc(n + 1);
    if (!tmp)
        return fail(ps, st, SS_ERR_NOMEM, "out of memory%s", NULL);
    memcpy(tmp, st, n);
    tmp[n] = 0;
    double r = strtod(tmp, NULL);
    if (tmp != small)
        free(tmp);
    if (!isfinite(r))
        return fail(ps, st, SS_ERR_INVALID, "number out of range%s", NULL);
    v->t = SS_JSON_REAL;
    v->u.r = r;
    return SS_OK;
}

static int parse_value(parser_t *ps, ss_json_t *v);

static int push_val(parser_t *ps, const ss_json_t *v)
{
    if (ps->nvals == ps->capvals) {
        size_t nc = ps->capvals * 2;
        ss_json_t *a = ps->vals == ps->vals0 ? malloc(nc * sizeof *a) : realloc(ps->vals, nc * sizeof *a);
        if (!a)
            return fail(ps, ps->p, SS_ERR_NOMEM, "out of memory%s", NULL);
        if (ps->vals == ps->vals0)
            memcpy(a, ps->vals0, sizeof ps->vals0);
        ps->vals = a;
        ps->capvals = nc;
    }
    ps->vals[ps->nvals++] = *v;
    return SS_OK;
}

static int push_mem(parser_t *ps, const ss_json_member_t *m)
{
    if (ps->nmems == ps->capmems) {
        size_t nc = ps->capmems * 2;
        ss_json_member_t *a = ps->mems == ps->mems0 ? malloc(nc * sizeof *a) : realloc(ps->mems, nc * sizeof *a);
        if (!a)
            return fail(ps, ps->p, SS_ERR_NOMEM, "out of memory%s", NULL);
        if (ps->mems == ps->mems0)
            memcpy(a, ps->mems0, sizeof ps->mems0);
        ps->mems = a;
        ps->capmems = nc;
    }
    ps->mems[ps->nmems++] = *m;
    return SS_OK;
}

static int parse_array(parser_t *ps, ss_json_t *v)
{
    size_t base = ps->nvals;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->e && *ps->p == ']')
        ps->p++;
    else
        for (;;) {
            ss_json_t item;
            int rc = parse_value(ps, &item);
            if (!rc)
                rc = push_val(ps, &item);
            if (rc)
                return rc;
            skip_ws(ps);
            if (ps->p < ps->e && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->e && *ps->p == ']') {
                ps->p++;
                break;
            }
            return fail_char(ps, "',' or ']'");
        }
    size_t n = ps->nvals - base;
    ss_json_t *items = NULL;
    if (n && !(items = arena_alloc(ps->doc, n * sizeof *items)))
        return fail(ps, ps->p, SS_ERR_NOMEM, "out of memory%s", NULL);
    if (n)
        memcpy(items, ps->vals + base, n * sizeof *items);
    ps->nvals = base;
    v->t = SS_JSON_ARRAY;
    v->u.arr.items = items;
    v->u.arr.n = n;
    return SS_OK;
}

static int parse_object(parser_t *ps, ss_json_t *v)
{
    size_t base = ps->nmems;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->e && *ps->p == '}')
        ps->p++;
    else
        for (;;) {
            ss_json_member_t m;
            skip_ws(ps);
            if (ps->p >= ps->e || *ps->p != '"')
                return fail_char(ps, "a string key");
            int rc = parse_string(ps, &m.key, &m.klen);
            if (rc)
                return rc;
            skip_ws(ps);
            if (ps->p >= ps->e || *ps->p != ':')
                return fail_char(ps, "':'");
            ps->p++;
            if ((rc = parse_value(ps, &m.val)) || (rc = push_mem(ps, &m)))
                return rc;
            skip_ws(ps);
            if (ps->p < ps->e && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->e && *ps->p == '}') {
                ps->p++;
                break;
            }
            return fail_char(ps, "',' or '}'");
        }
    size_t n = ps->nmems - base;
    ss_json_member_t *mem = NULL;
    if (n && !(mem = arena_alloc(ps->doc, n * sizeof *mem)))
        return fail(ps, ps->p, SS_ERR_NOMEM, "out of memory%s", NULL);
    if (n)
        memcpy(mem, ps->mems + base, n * sizeof *mem);
    ps->nmems = base;
    v->t = SS_JSON_OBJECT;
    v->u.obj.m = mem;
    v->u.obj.n = n;
    return SS_OK;
}

static int literal(parser_t *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->e - ps->p) < n || memcmp(ps->p, word, n))
        return fail_char(ps, "a JSON value");
    ps->p += n;
    return SS_OK;
}

static int parse_value(parser_t *ps, ss_json_t *v)
{
    memset(v, 0, sizeof *v);
    skip_ws(ps);
    if (ps->p >= ps->e)
        return fail_char(ps, "a JSON value");
    switch (*ps->p) {
    case '{':
    case '[': {
        if (ps->depth >= ps->max_depth) {
            char lim[32];
            snprintf(lim, sizeof lim, "%d", ps->max_depth);
            return fail(ps, ps->p, SS_ERR_INVALID, "nesting deeper than %s levels", lim);
        }
        ps->depth++;
        int rc = *ps->p == '{' ? parse_object(ps, v) : parse_array(ps, v);
        ps->depth--;
        return rc;
    }
    case '"':
        v->t = SS_JSON_STRING;
        return parse_string(ps, &v->u.str.s, &v->u.str.n);
    case 't':
        v->t = SS_JSON_BOOL;
        v->u.b = 1;
        return literal(ps, "true");
    case 'f':
        v->t = SS_JSON_BOOL;
        return literal(ps, "false");
    case 'n':
        return literal(ps, "null");
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return parse_number(ps, v);
        return fail_char(ps, "a JSON value");
    }
}

int ss_json_parse(const char *text, size_t len, int max_depth, ss_json_doc_t **out,
                  size_t *errpos, char *err, size_t errsz)
{
    *out = NULL;
    /* the document and its first chunk (sized to the input) are one allocation */
    size_t cap0 = (text ? len : 0) * 2 + 256; /* small documents: one small chunk */
    if (cap0 > 32768)
        cap0 = 32768;
    cap0 = (cap0 + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    size_t head = (sizeof(ss_json_doc_t) + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    ss_json_doc_t *d = malloc(head + sizeof(chunk_t) + cap0);
    if (!d)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "byte 0: out of memory");
    memset(d, 0, sizeof *d);
    d->first = (chunk_t *)((char *)d + head);
    d->first->next = NULL;
    d->first->used = 0;
    d->first->cap = cap0;
    d->chunks = d->first;
    d->next_cap = cap0 < 32768 ? cap0 * 2 : 32768;
    parser_t ps = {0};
    ps.vals = ps.vals0;
    ps.capvals = SS_ARRAY_LEN(ps.vals0);
    ps.mems = ps.mems0;
    ps.capmems = SS_ARRAY_LEN(ps.mems0);
    ps.s = ps.p = (const unsigned char *)(text ? text : "");
    ps.e = ps.s + (text ? len : 0);
    ps.max_depth = max_depth > 0 ? max_depth : SS_JSON_MAX_DEPTH;
    ps.doc = d;
    ps.err = err;
    ps.errsz = errsz;
    int rc = parse_value(&ps, &d->root);
    if (!rc) {
        skip_ws(&ps);
        if (ps.p < ps.e)
            rc = fail(&ps, ps.p, SS_ERR_INVALID, "unexpected data after the JSON value%s", NULL);
    }
    if (ps.vals != ps.vals0)
        free(ps.vals);
    if (ps.mems != ps.mems0)
        free(ps.mems);
    if (rc) {
        if (errpos)
            *errpos = ps.errpos;
        ss_json_free(d);
        return rc;
    }
    *out = d;
    return SS_OK;
}

/* A string of plain ASCII (no escapes, no control bytes) at ps->p, copied NUL-terminated to *o. */
static int flat_string(parser_t *ps, char **o, const char *oe, const char **out, size_t *outn)
{
    const unsigned char *q = ++ps->p;
    char *start = *o;
    while (q < ps->e && *q != '"') {
        if (*q < 0x20 || *q >= 0x80 || *q == '\\' || *o >= oe)
            return SS_ERR_UNSUPPORTED;
        *(*o)++ = (char)*q++;
    }
    if (q >= ps->e || *o >= oe)
        return SS_ERR_UNSUPPORTED;
    *(*o)++ = 0;
    ps->p = q + 1;
    *out = start;
    *outn = (size_t)(*o - start - 1);
    return SS_OK;
}

static int flat_value(parser_t *ps, ss_json_t *v, char **o, const char *oe)
{
    memset(v, 0, sizeof *v);
    skip_ws(ps);
    if (ps->p >= ps->e)
        return SS_ERR_UNSUPPORTED;
    switch (*ps->p) {
    case '"': v->t = SS_JSON_STRING; return flat_string(ps, o, oe, &v->u.str.s, &v->u.str.n);
    case 't': v->t = SS_JSON_BOOL; v->u.b = 1; return literal(ps, "true") ? SS_ERR_UNSUPPORTED : SS_OK;
    case 'f': v->t = SS_JSON_BOOL; return literal(ps, "false") ? SS_ERR_UNSUPPORTED : SS_OK;
    case 'n': return literal(ps, "null") ? SS_ERR_UNSUPPORTED : SS_OK;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return parse_number(ps, v) ? SS_ERR_UNSUPPORTED : SS_OK;
        return SS_ERR_UNSUPPORTED;
    }
}

int ss_json_scan_flat(const char *text, size_t len, ss_json_member_t *m, size_t cap, size_t *n, char *buf,
                      size_t bufsz)
{
    parser_t ps = {0};
    ps.s = ps.p = (const unsigned char *)text;
    ps.e = ps.s + len;
    char *o = buf;
    const char *oe = buf + bufsz;
    *n = 0;
    skip_ws(&ps);
    if (!text || ps.p >= ps.e || *ps.p++ != '{')
        return SS_ERR_UNSUPPORTED;
    skip_ws(&ps);
    if (ps.p < ps.e && *ps.p == '}')
        ps.p++;
    else
        for (;;) {
            skip_ws(&ps);
            if (*n >= cap || ps.p >= ps.e || *ps.p != '"' || flat_string(&ps, &o, oe, &m[*n].key, &m[*n].klen))
                return SS_ERR_UNSUPPORTED;
            skip_ws(&ps);
            if (ps.p >= ps.e || *ps.p++ != ':' || flat_value(&ps, &m[*n].val, &o, oe))
                return SS_ERR_UNSUPPORTED;
            ++*n;
            skip_ws(&ps);
            if (ps.p < ps.e && *ps.p == ',') {
                ps.p++;
                continue;
            }
            if (ps.p < ps.e && *ps.p == '}') {
                ps.p++;
                break;
            }
            return SS_ERR_UNSUPPORTED;
        }
    skip_ws(&ps);
    return ps.p == ps.e ? SS_OK : SS_ERR_UNSUPPORTED;
}

const ss_json_t *ss_json_root(const ss_json_doc_t *d) { return d ? &d->root : NULL; }

void ss_json_free(ss_json_doc_t *d)
{
    if (!d)
        return;
    for (chunk_t *c = d->chunks, *n; c; c = n) {
        n = c->next;
        if (c != d->first)
            free(c);
    }
    free(d);
}

const ss_json_t *ss_json_get(const ss_json_t *v, const char *key)
{
    if (!v || v->t != SS_JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = v->u.obj.n; i-- > 0;)
        if (v->u.obj.m[i].klen == kl && !memcmp(v->u.obj.m[i].key, key, kl))
            return &v->u.obj.m[i].val;
    return NULL;
}

const ss_json_t *ss_json_get_ci(const ss_json_t *v, const char *key)
{
    if (!v || v->t != SS_JSON_OBJECT)
        return NULL;
    for (size_t i = v->u.obj.n; i-- > 0;)
        if (ss_strcaseeq(v->u.obj.m[i].key, key))
            return &v->u.obj.m[i].val;
    return NULL;
}

const char *ss_json_str(const ss_json_t *v) { return v && v->t == SS_JSON_STRING ? v->u.str.s : NULL; }

const char *ss_json_type_name(ss_json_type_t t)
{
    static const char *n[] = {"null", "boolean", "integer", "number", "string", "array", "object"};
    return (unsigned)t < SS_ARRAY_LEN(n) ? n[t] : "?";
}

int ss_json_put_str_utf8(ss_buf_t *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    int rc = ss_buf_putc(out, '"');
    while (p < e && !rc) {
        const unsigned char *run = p;
        size_t k;
        while (p < e && *p >= 0x20 && *p != '"' && *p != '\\' && (k = utf8_seq(p, e)) != 0)
            p += k;
        if (p > run)
            rc = ss_buf_append(out, run, (size_t)(p - run));
        if (p >= e || rc)
            break;
        if (*p == '"' || *p == '\\')
            rc = ss_buf_printf(out, "\\%c", *p);
        else if (*p < 0x20)
            rc = ss_buf_printf(out, "\\u%04x", *p);
        else
            rc = ss_buf_puts(out, "\xef\xbf\xbd");
        p++;
    }
    return rc ? rc : ss_buf_putc(out, '"');
}

int ss_json_write(const ss_json_t *v, ss_buf_t *out)
{
    int rc = SS_OK;
    switch (v->t) {
    case SS_JSON_NULL: return ss_buf_puts(out, "null");
    case SS_JSON_BOOL: return ss_buf_puts(out, v->u.b ? "true" : "false");
    case SS_JSON_INT: return ss_buf_printf(out, "%lld", (long long)v->u.i);
    case SS_JSON_REAL: return ss_buf_printf(out, "%.17g", v->u.r);
    case SS_JSON_STRING: return ss_buf_put_json_str(out, v->u.str.s, v->u.str.n);
    case SS_JSON_ARRAY:
        rc = ss_buf_putc(out, '[');
        for (size_t i = 0; i < v->u.arr.n && !rc; i++) {
            if (i)
                rc = ss_buf_putc(out, ',');
            if (!rc)
                rc = ss_json_write(&v->u.arr.items[i], out);
        }
        return rc ? rc : ss_buf_putc(out, ']');
    case SS_JSON_OBJECT:
        rc = ss_buf_putc(out, '{');
        for (size_t i = 0; i < v->u.obj.n && !rc; i++) {
            if (i)
                rc = ss_buf_putc(out, ',');
            if (!rc)
                rc = ss_buf_put_json_str(out, v->u.obj.m[i].key, v->u.obj.m[i].klen);
            if (!rc)
                rc = ss_buf_putc(out, ':');
            if (!rc)
                rc = ss_json_write(&v->u.obj.m[i].val, out);
        }
        return rc ? rc : ss_buf_putc(out, '}');
    }
    return SS_ERR_INTERNAL;
}
