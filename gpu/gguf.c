/*
 * gguf.c — the GGUF v3 reader: maps a file, validates header, metadata and tensor
 * infos against the file size, and answers lookups. Also owns the ggml type table
 * (block sizes) and the scalar fp16/bf16 conversions and (de)quantizers.
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

/* ---------------- type table ---------------- */

int ss_ggml_block_elems(int type)
{
    switch (type) {
    case SS_GGML_F32: case SS_GGML_F16: case SS_GGML_BF16: return 1;
    case SS_GGML_Q4_0: case SS_GGML_Q8_0: return 32;
    case SS_GGML_Q4_K: return 256;
    default: return 0;
    }
}

size_t ss_ggml_block_bytes(int type)
{
    switch (type) {
    case SS_GGML_F32: return 4;
    case SS_GGML_F16: case SS_GGML_BF16: return 2;
    case SS_GGML_Q4_0: return 18;
    case SS_GGML_Q8_0: return 34;
    case SS_GGML_Q4_K: return 144;
    default: return 0;
    }
}

const char *ss_ggml_type_name(int type)
{
    switch (type) {
    case SS_GGML_F32: return "f32";
    case SS_GGML_F16: return "f16";
    case SS_GGML_BF16: return "bf16";
    case SS_GGML_Q4_0: return "q4_0";
    case SS_GGML_Q8_0: return "q8_0";
    case SS_GGML_Q4_K: return "q4_k";
    default: return "?";
    }
}

size_t ss_ggml_row_bytes(int type, int64_t n)
{
    int be = ss_ggml_block_elems(type);
    return be ? (size_t)(n / be) * ss_ggml_block_bytes(type) : 0;
}

/* ---------------- fp16 / bf16 ---------------- */

float ss_fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t ss_f32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) /* inf / nan */
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* may carry into the exponent, which is correct rounding */
    return (uint16_t)(sign | h);
}

float ss_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t ss_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---------------- (de)quantization, scalar reference ---------------- */

void ss_ggml_from_f32(int type, const float *src, void *dst, int64_t n)
{
    uint8_t *d = dst;
    switch (type) {
    case SS_GGML_F32:
        memcpy(dst, src, (size_t)n * 4);
        break;
    case SS_GGML_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = ss_f32_to_fp16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case SS_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = ss_f32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case SS_GGML_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, src += 32, d += 34) {
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(src[j]));
            float sc = amax / 127.f, inv = sc ? 1.f / sc : 0.f;
            uint16_t h = ss_f32_to_fp16(sc);
            memcpy(d, &h, 2);
            for (int j = 0; j < 32; j++)
                d[2 + j] = (uint8_t)(int8_t)lrintf(src[j] * inv);
        }
        break;
    case SS_GGML_Q4_0:
        for (int64_t b = 0; b < n / 32; b++, src += 32, d += 18) {
            float amax = 0, mx = 0;
            for (int j = 0; j < 32; j++)
                if (fabsf(src[j]) > amax) {
                    amax = fabsf(src[j]);
                    mx = src[j];
                }
            float sc = mx / -8.f, inv = sc ? 1.f / sc : 0.f;
            uint16_t h = ss_f32_to_fp16(sc);
            memcpy(d, &h, 2);
            for (int j = 0; j < 16; j++) {
                int a = (int)fminf(15.f, src[j] * inv + 8.5f), c = (int)fminf(15.f, src[j + 16] * inv + 8.5f);
                d[2 + j] = (uint8_t)(a | (c << 4));
            }
        }
        break;
    default:
        memset(dst, 0, ss_ggml_row_bytes(type, n));
    }
}

static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

void ss_ggml_to_f32(int type, const void *src, float *dst, int64_t n)
{
    const uint8_t *s = src;
    uint16_t h;
    switch (type) {
    case SS_GGML_F32:
        memcpy(dst, src, (size_t)n * 4);
        break;
    case SS_GGML_F16:
        for (int64_t i = 0; i < n; i++) {
            memcpy(&h, s + 2 * i, 2);
            dst[i] = ss_fp16_to_f32(h);
        }
        break;
    case SS_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            memcpy(&h, s + 2 * i, 2);
            dst[i] = ss_bf16_to_f32(h);
        }
        break;
    case SS_GGML_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, s += 34, dst += 32) {
            memcpy(&h, s, 2);
            float d = ss_fp16_to_f32(h);
            for (int j = 0; j < 32; j++)
                dst[j] = d * (float)(int8_t)s[2 + j];
        }
        break;
    case SS_GGML_Q4_0:
        for (int64_t b = 0; b < n / 32; b++, s += 18, dst += 32) {
            memcpy(&h, s, 2);
            float d = ss_fp16_to_f32(h);
            for (int j = 0; j < 16; j++) {
                dst[j] = d * (float)((s[2 + j] & 15) - 8);
                dst[j + 16] = d * (float)((s[2 + j] >> 4) - 8);
            }
        }
        break;
    case SS_GGML_Q4_K:
        for (int64_t b = 0; b < n / 256; b++, s += 144) {
            uint16_t hd, hm;
            memcpy(&hd, s, 2);
            memcpy(&hm, s + 2, 2);
            float d = ss_fp16_to_f32(hd), dmin = ss_fp16_to_f32(hm);
            const uint8_t *sc = s + 4, *q = s + 16;
            int is = 0;
            for (int j = 0; j < 256; j += 64) {
                uint8_t a, m;
                get_scale_min_k4(is, sc, &a, &m);
                float d1 = d * a, m1 = dmin * m;
                get_scale_min_k4(is + 1, sc, &a, &m);
                float d2 = d * a, m2 = dmin * m;
                for (int l = 0; l < 32; l++)
                    *dst++ = d1 * (q[l] & 0xF) - m1;
                for (int l = 0; l < 32; l++)
                    *dst++ = d2 * (q[l] >> 4) - m2;
                q += 32;
                is += 2;
            }
        }
        break;
    default:
        memset(dst, 0, (size_t)n * 4);
    }
}

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
    if (!be)
        return fail(r, "tensor '%s': unsupported tensor type %llu (f32, f16, bf16, q4_0, q8_0, q4_k are)", tname,
                    (uint64_t)t->type);
    if (t->ne[0] % be)
        return fail(r, "tensor '%s': row length %llu is not a multiple of the type's block size", tname,
                    (uint64_t)t->ne[0]);
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
