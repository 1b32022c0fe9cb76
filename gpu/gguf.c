/*
 * gguf.c — the GGUF v3 reader: maps a file, validates header, metadata and tensor
 * infos against the file size, and answers lookups. The ggml type table, fp16/bf16
 * conversion and (de)quantization are in quant.c.
 */
#include "ss_gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------- parsing ---------------- */

typedef struct rd {
    const uint8_t *p;
    size_t n, off;
    char *err;
    size_t errsz;
    int failed;
} rd_t;

static int need(rd_t *r, size_t k, const char *what)
{
    if (r->failed)
        return 0;
    if (k > r->n - r->off) {
        ss_seterr(r->err, r->errsz, SS_ERR_MODEL, "truncated file: %s at byte %zu needs %zu bytes, file has %zu",
                  what, r->off, k, r->n);
        r->failed = 1;
        return 0;
    }
    return 1;
}

static uint64_t rd_u(rd_t *r, size_t k, const char *what)
{
    if (!need(r, k, what))
        return 0;
    uint64_t v = 0;
    memcpy(&v, r->p + r->off, k); /* little-endian host assumed (x86-64 / arm64) */
    r->off += k;
    return v;
}

static ss_gguf_str_t rd_str(rd_t *r, const char *what)
{
    ss_gguf_str_t s = {NULL, 0};
    uint64_t n = rd_u(r, 8, what);
    if (r->failed)
        return s;
    if (!need(r, n, what))
        return s;
    s.p = (const char *)r->p + r->off;
    s.n = n;
    r->off += n;
    return s;
}

static size_t vtype_size(int t)
{
    switch (t) {
    case SS_GGUF_U8: case SS_GGUF_I8: case SS_GGUF_BOOL: return 1;
    case SS_GGUF_U16: case SS_GGUF_I16: return 2;
    case SS_GGUF_U32: case SS_GGUF_I32: case SS_GGUF_F32: return 4;
    case SS_GGUF_U64: case SS_GGUF_I64: case SS_GGUF_F64: return 8;
    default: return 0;
    }
}

static int fail(rd_t *r, const char *fmt, const char *name, uint64_t v)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, name, (unsigned long long)v);
    ss_seterr(r->err, r->errsz, SS_ERR_MODEL, "%s (at byte %zu)", msg, r->off);
    r->failed = 1;
    return 0;
}

static int parse_kv(rd_t *r, ss_gguf_kv_t *kv, uint64_t idx)
{
    char what[64];
    snprintf(what, sizeof what, "metadata key #%llu", (unsigned long long)idx);
    kv->key = rd_str(r, what);
    kv->type = (int)rd_u(r, 4, what);
    if (r->failed)
        return 0;
    char kname[128];
    snprintf(kname, sizeof kname, "%.*s", (int)SS_MIN(kv->key.n, 100), kv->key.p);
    kv->n = 1;
    if (kv->type == SS_GGUF_ARRAY) {
        kv->atype = (int)rd_u(r, 4, kname);
        kv->n = rd_u(r, 8, kname);
        if (r->failed)
            return 0;
        if (kv->atype == SS_GGUF_ARRAY)
            return fail(r, "metadata '%s': nested arrays are not supported (type %llu)", kname, 9);
    } else {
        kv->atype = kv->type;
    }
    kv->val = r->p + r->off;
    if (kv->atype == SS_GGUF_STRING) {
        for (uint64_t i = 0; i < kv->n && !r->failed; i++)
            rd_str(r, kname);
        return !r->failed;
    }
    size_t es = vtype_size(kv->atype);
    if (!es)
        return fail(r, "metadata '%s': unknown value type %llu", kname, (uint64_t)kv->atype);
    if (kv->n > (r->n - r->off) / es)
        return fail(r, "truncated file: metadata '%s' array of %llu elements runs past the end", kname, kv->n);
    r->off += es * kv->n;
    return 1;
}

/* " (name)" of ggml types this reader does not support, for the error message. */
static const char *other_type_name(int type)
{
    static const struct { int t; const char *n; } k[] = {
        {9, " (q8_1)"},     {16, " (iq2_xxs)"}, {17, " (iq2_xs)"}, {18, " (iq3_xxs)"}, {19, " (iq1_s)"},
        {21, " (iq3_s)"},   {22, " (iq2_s)"},   {24, " (i8)"},     {25, " (i16)"},     {26, " (i32)"},
        {27, " (i64)"},     {28, " (f64)"},     {29, " (iq1_m)"},  {34, " (tq1_0)"},   {35, " (tq2_0)"},
        {39, " (mxfp4)"},
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(k); i++)
        if (k[i].t == type)
            return k[i].n;
    return "";
}

static int parse_tensor(rd_t *r, ss_gguf_tensor_t *t, uint64_t idx)
{
    char what[64];
    snprintf(what, sizeof what, "tensor info #%llu", (unsigned long long)idx);
    t->name = rd_str(r, what);
    uint32_t nd = (uint32_t)rd_u(r, 4, what);
    if (r->failed)
        return 0;
    char tname[128];
    snprintf(tname, sizeof tname, "%.*s", (int)SS_MIN(t->name.n, 100), t->name.p);
    if (nd < 1 || nd > SS_GGUF_MAX_DIMS)
        return fail(r, "tensor '%s': %llu dimensions (1..4 allowed)", tname, nd);
    t->ndim = (int)nd;
    t->nelem = 1;
    for (int d = 0; d < SS_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v = rd_u(r, 8, tname);
        if (r->failed)
            return 0;
        if (v == 0 || v > ((uint64_t)1 << 40) || (uint64_t)t->nelem > (((uint64_t)1 << 42) / v))
            return fail(r, "tensor '%s': dimension of %llu elements out of range", tname, v);
        t->ne[d] = (int64_t)v;
        t->nelem *= (int64_t)v;
    }
    t->type = (int)rd_u(r, 4, tname);
    t->offset = rd_u(r, 8, tname);
    if (r->failed)
        return 0;
    int be = ss_ggml_block_elems(t->type);
    if (!be) {
        ss_seterr(r->err, r->errsz, SS_ERR_MODEL,
                  "tensor '%s': unsupported tensor type %d%s (supported: %s) (at byte %zu)", tname, t->type,
                  other_type_name(t->type), ss_ggml_type_names(), r->off);
        r->failed = 1;
        return 0;
    }
    if (t->ne[0] % be) {
        ss_seterr(r->err, r->errsz, SS_ERR_MODEL,
                  "tensor '%s': row length %lld is not a multiple of %s's block of %d (at byte %zu)", tname,
                  (long long)t->ne[0], ss_ggml_type_name(t->type), be, r->off);
        r->failed = 1;
        return 0;
    }
    t->nbytes = ss_ggml_row_bytes(t->type, t->ne[0]) * (size_t)(t->nelem / t->ne[0]);
    return 1;
}

static int check_tensors(rd_t *r, ss_gguf_t *g)
{
    size_t datalen = g->size - g->data_off;
    for (uint64_t i = 0; i < g->ntensors; i++) {
        ss_gguf_tensor_t *t = &g->tensors[i];
        char tname[128];
        snprintf(tname, sizeof tname, "%.*s", (int)SS_MIN(t->name.n, 100), t->name.p);
        if (t->offset % g->alignment)
            return fail(r, "tensor '%s': data offset %llu is not aligned", tname, t->offset);
        if (t->offset > datalen || t->nbytes > datalen - t->offset)
            return fail(r, "tensor '%s': data at offset %llu runs past the end of the file", tname, t->offset);
        t->data = g->base + g->data_off + t->offset;
        for (uint64_t j = 0; j < i; j++)
            if (g->tensors[j].name.n == t->name.n && !memcmp(g->tensors[j].name.p, t->name.p, t->name.n))
                return fail(r, "tensor '%s' appears twice (#%llu)", tname, i);
    }
    return 1;
}

static ss_err_t parse(ss_gguf_t *g, char *err, size_t errsz)
{
    rd_t r = {g->base, g->size, 0, err, errsz, 0};
    uint32_t magic = (uint32_t)rd_u(&r, 4, "magic");
    if (r.failed)
        return SS_ERR_MODEL;
    if (magic != 0x46554747u) /* never echo the file's bytes: the path may name any file */
        return ss_seterr(err, errsz, SS_ERR_MODEL, "not a GGUF file: it does not start with \"GGUF\"");
    g->version = (uint32_t)rd_u(&r, 4, "version");
    if (!r.failed && g->version != 3 && g->version != 2)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "unsupported GGUF version %u at byte 4 (2 and 3 are)", g->version);
    g->ntensors = rd_u(&r, 8, "tensor count");
    g->nkv = rd_u(&r, 8, "metadata count");
    if (r.failed)
        return SS_ERR_MODEL;
    /* every kv needs >= 12 bytes and every tensor info >= 28: bound counts by the size */
    if (g->nkv > g->size / 12 || g->ntensors > g->size / 28)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "truncated file or corrupt header: %llu metadata entries / %llu tensors cannot fit in %zu bytes",
                         (unsigned long long)g->nkv, (unsigned long long)g->ntensors, g->size);
    g->kv = calloc(g->nkv ? g->nkv : 1, sizeof *g->kv);
    g->tensors = calloc(g->ntensors ? g->ntensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory reading GGUF header");
    for (uint64_t i = 0; i < g->nkv; i++)
        if (!parse_kv(&r, &g->kv[i], i))
            return SS_ERR_MODEL;
    g->alignment = 32;
    int64_t al;
    if (ss_gguf_get_i64(g, "general.alignment", &al)) {
        if (al <= 0 || al > 65536 || (al & (al - 1)))
            return ss_seterr(err, errsz, SS_ERR_MODEL, "general.alignment %lld is not a power of two", (long long)al);
        g->alignment = (uint32_t)al;
    }
    for (uint64_t i = 0; i < g->ntensors; i++)
        if (!parse_tensor(&r, &g->tensors[i], i))
            return SS_ERR_MODEL;
    g->header_bytes = r.off;
    size_t d = (r.off + g->alignment - 1) / g->alignment * g->alignment;
    if (d > g->size && g->ntensors)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "truncated file: data section starts at byte %zu past the end (%zu)", d,
                         g->size);
    g->data_off = SS_MIN(d, g->size);
    if (!check_tensors(&r, g))
        return SS_ERR_MODEL;
    return SS_OK;
}

ss_err_t ss_gguf_open_mem(const void *p, size_t n, ss_gguf_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_gguf_t *g = calloc(1, sizeof *g);
    if (!g)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    g->base = p;
    g->size = n;
    ss_err_t rc = parse(g, err, errsz);
    if (rc) {
        free(g->kv);
        free(g->tensors);
        free(g);
        return rc;
    }
    *out = g;
    return SS_OK;
}

ss_err_t ss_gguf_open(const char *path, ss_gguf_t **out, char *err, size_t errsz)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ss_seterr(err, errsz, SS_ERR_IO, "cannot open model '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ss_seterr(err, errsz, SS_ERR_IO, "model '%s' is not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    void *p = n ? mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (n && p == MAP_FAILED)
        return ss_seterr(err, errsz, SS_ERR_IO, "cannot map model '%s': %s", path, strerror(errno));
    static const uint8_t empty[1];
    ss_err_t rc = ss_gguf_open_mem(n ? p : empty, n, out, err, errsz);
    if (rc) {
        if (n)
            munmap(p, n);
        ss_errprefix(err, errsz, "%s", path);
        return rc;
    }
    (*out)->path = ss_strdup(path);
    if (!n)
        (*out)->base = NULL;
    return SS_OK;
}

void ss_gguf_close(ss_gguf_t *g)
{
    if (!g)
        return;
    if (g->path && g->base)
        munmap((void *)g->base, g->size);
    free(g->path);
    free(g->kv);
    free(g->tensors);
    free(g);
}

/* ---------------- lookups ---------------- */

static int streq(ss_gguf_str_t s, const char *c)
{
    size_t n = strlen(c);
    return s.n == n && !memcmp(s.p, c, n);
}

const ss_gguf_kv_t *ss_gguf_find(const ss_gguf_t *g, const char *key)
{
    for (uint64_t i = 0; i < g->nkv; i++)
        if (streq(g->kv[i].key, key))
            return &g->kv[i];
    return NULL;
}

static int64_t scalar_i64(int t, const uint8_t *v)
{
    int8_t i8; int16_t i16; int32_t i32; int64_t i64; uint16_t u16; uint32_t u32; uint64_t u64;
    switch (t) {
    case SS_GGUF_U8: case SS_GGUF_BOOL: return v[0];
    case SS_GGUF_I8: memcpy(&i8, v, 1); return i8;
    case SS_GGUF_U16: memcpy(&u16, v, 2); return u16;
    case SS_GGUF_I16: memcpy(&i16, v, 2); return i16;
    case SS_GGUF_U32: memcpy(&u32, v, 4); return u32;
    case SS_GGUF_I32: memcpy(&i32, v, 4); return i32;
    case SS_GGUF_U64: memcpy(&u64, v, 8); return (int64_t)u64;
    case SS_GGUF_I64: memcpy(&i64, v, 8); return i64;
    default: return 0;
    }
}

static int is_int(int t) { return vtype_size(t) && t != SS_GGUF_F32 && t != SS_GGUF_F64; }

static double scalar_f64(int t, const uint8_t *v)
{
    float f;
    double d;
    if (t == SS_GGUF_F32) {
        memcpy(&f, v, 4);
        return f;
    }
    if (t == SS_GGUF_F64) {
        memcpy(&d, v, 8);
        return d;
    }
    return (double)scalar_i64(t, v);
}

int ss_gguf_get_i64(const ss_gguf_t *g, const char *key, int64_t *v)
{
    const ss_gguf_kv_t *kv = ss_gguf_find(g, key);
    if (!kv || kv->type == SS_GGUF_ARRAY || !is_int(kv->type))
        return 0;
    *v = scalar_i64(kv->type, kv->val);
    return 1;
}

int ss_gguf_get_f64(const ss_gguf_t *g, const char *key, double *v)
{
    const ss_gguf_kv_t *kv = ss_gguf_find(g, key);
    if (!kv || kv->type == SS_GGUF_ARRAY || !vtype_size(kv->type))
        return 0;
    *v = scalar_f64(kv->type, kv->val);
    return 1;
}

int ss_gguf_get_str(const ss_gguf_t *g, const char *key, ss_gguf_str_t *v)
{
    const ss_gguf_kv_t *kv = ss_gguf_find(g, key);
    if (!kv || kv->type != SS_GGUF_STRING)
        return 0;
    uint64_t n;
    memcpy(&n, kv->val, 8);
    v->p = (const char *)kv->val + 8;
    v->n = n;
    return 1;
}

int64_t ss_gguf_arr_i64(const ss_gguf_kv_t *kv, uint64_t i)
{
    return i < kv->n ? scalar_i64(kv->atype, kv->val + i * vtype_size(kv->atype)) : 0;
}

double ss_gguf_arr_f64(const ss_gguf_kv_t *kv, uint64_t i)
{
    return i < kv->n ? scalar_f64(kv->atype, kv->val + i * vtype_size(kv->atype)) : 0;
}

int ss_gguf_str_iter(const ss_gguf_kv_t *kv, size_t *pos, ss_gguf_str_t *s)
{
    /* *pos is a byte offset from kv->val; the parser verified every length */
    if (kv->atype != SS_GGUF_STRING)
        return 0;
    uint64_t n;
    memcpy(&n, kv->val + *pos, 8);
    s->p = (const char *)kv->val + *pos + 8;
    s->n = n;
    *pos += 8 + n;
    return 1;
}

const ss_gguf_tensor_t *ss_gguf_tensor(const ss_gguf_t *g, const char *name)
{
    for (uint64_t i = 0; i < g->ntensors; i++)
        if (streq(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}
