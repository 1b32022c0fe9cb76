/*
 * gguf_write.c — a small GGUF v3 writer: collects metadata and tensors, then writes
 * header, tensor infos and 32-byte-aligned data. Tensors are either copied in
 * (converted at add time) or produced row by row at save time by a callback, so
 * tools/mkgguf can write multi-gigabyte files without holding them as f32.
 * Shared by tests (tiny synthetic models) and tools/mkgguf.
 */
#include "ss_gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct wtensor {
    char *name;
    int type, ndim;
    int64_t ne[SS_GGUF_MAX_DIMS];
    uint8_t *data;       /* converted bytes, or NULL when fill is set */
    size_t nbytes;
    ss_gguf_fill_fn fill;
    void *ctx;
} wtensor_t;

struct ss_gguf_writer {
    ss_buf_t kv;  /* serialized metadata entries */
    uint64_t nkv;
    wtensor_t *t;
    size_t nt, cap;
    int oom;
};

ss_gguf_writer_t *ss_gguf_writer_new(void) { return calloc(1, sizeof(ss_gguf_writer_t)); }

void ss_gguf_writer_destroy(ss_gguf_writer_t *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nt; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    ss_buf_free(&w->kv);
    free(w);
}

static void put(ss_gguf_writer_t *w, const void *p, size_t n)
{
    if (ss_buf_append(&w->kv, p, n))
        w->oom = 1;
}

static void put_u32(ss_gguf_writer_t *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(ss_gguf_writer_t *w, uint64_t v) { put(w, &v, 8); }

static void put_str(ss_gguf_writer_t *w, const char *s)
{
    put_u64(w, strlen(s));
    put(w, s, strlen(s));
}

static void key(ss_gguf_writer_t *w, const char *k, int type)
{
    put_str(w, k);
    put_u32(w, (uint32_t)type);
    w->nkv++;
}

void ss_gguf_w_str(ss_gguf_writer_t *w, const char *k, const char *v)
{
    key(w, k, SS_GGUF_STRING);
    put_str(w, v);
}

void ss_gguf_w_u32(ss_gguf_writer_t *w, const char *k, uint32_t v)
{
    key(w, k, SS_GGUF_U32);
    put_u32(w, v);
}

void ss_gguf_w_i32(ss_gguf_writer_t *w, const char *k, int32_t v)
{
    key(w, k, SS_GGUF_I32);
    put(w, &v, 4);
}

void ss_gguf_w_f32(ss_gguf_writer_t *w, const char *k, float v)
{
    key(w, k, SS_GGUF_F32);
    put(w, &v, 4);
}

void ss_gguf_w_bool(ss_gguf_writer_t *w, const char *k, int v)
{
    key(w, k, SS_GGUF_BOOL);
    uint8_t b = v ? 1 : 0;
    put(w, &b, 1);
}

void ss_gguf_w_arr_str(ss_gguf_writer_t *w, const char *k, const char *const *v, size_t n)
{
    key(w, k, SS_GGUF_ARRAY);
    put_u32(w, SS_GGUF_STRING);
    put_u64(w, n);
    for (size_t i = 0; i < n; i++)
        put_str(w, v[i]);
}

void ss_gguf_w_arr_f32(ss_gguf_writer_t *w, const char *k, const float *v, size_t n)
{
    key(w, k, SS_GGUF_ARRAY);
    put_u32(w, SS_GGUF_F32);
    put_u64(w, n);
    put(w, v, n * 4);
}

void ss_gguf_w_arr_i32(ss_gguf_writer_t *w, const char *k, const int32_t *v, size_t n)
{
    key(w, k, SS_GGUF_ARRAY);
    put_u32(w, SS_GGUF_I32);
    put_u64(w, n);
    put(w, v, n * 4);
}

static wtensor_t *add(ss_gguf_writer_t *w, const char *name, int type, int ndim, const int64_t *ne)
{
    if (w->nt == w->cap) {
        size_t nc = w->cap ? 2 * w->cap : 16;
        wtensor_t *t = realloc(w->t, nc * sizeof *t);
        if (!t) {
            w->oom = 1;
            return NULL;
        }
        w->t = t;
        w->cap = nc;
    }
    wtensor_t *t = &w->t[w->nt++];
    memset(t, 0, sizeof *t);
    t->name = ss_strdup(name);
    t->type = type;
    t->ndim = ndim;
    int64_t rows = 1;
    for (int d = 0; d < SS_GGUF_MAX_DIMS; d++)
        t->ne[d] = d < ndim ? ne[d] : 1;
    for (int d = 1; d < ndim; d++)
        rows *= ne[d];
    t->nbytes = ss_ggml_row_bytes(type, ne[0]) * (size_t)rows;
    if (!t->name)
        w->oom = 1;
    return t;
}

void ss_gguf_w_tensor(ss_gguf_writer_t *w, const char *name, int type, int ndim, const int64_t *ne,
                      const float *vals)
{
    wtensor_t *t = add(w, name, type, ndim, ne);
    if (!t)
        return;
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->data) {
        w->oom = 1;
        return;
    }
    int64_t rows = (int64_t)(t->nbytes / ss_ggml_row_bytes(type, ne[0]));
    size_t rb = ss_ggml_row_bytes(type, ne[0]);
    for (int64_t r = 0; r < rows; r++)
        ss_ggml_from_f32(type, vals + r * ne[0], t->data + (size_t)r * rb, ne[0]);
}

void ss_gguf_w_tensor_fn(ss_gguf_writer_t *w, const char *name, int type, int ndim, const int64_t *ne,
                         ss_gguf_fill_fn fill, void *ctx)
{
    wtensor_t *t = add(w, name, type, ndim, ne);
    if (t) {
        t->fill = fill;
        t->ctx = ctx;
    }
}

static int pad(FILE *f, long long *off)
{
    static const char z[32];
    size_t n = (size_t)((32 - *off % 32) % 32);
    *off += (long long)n;
    return n ? fwrite(z, 1, n, f) == n : 1;
}

static int write_fill(FILE *f, const wtensor_t *t)
{
    size_t rb = ss_ggml_row_bytes(t->type, t->ne[0]);
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    float *row = malloc((size_t)t->ne[0] * sizeof *row);
    uint8_t *q = malloc(rb);
    int ok = row && q;
    for (int64_t r = 0; ok && r < rows; r++) {
        t->fill(t->ctx, r, row);
        ss_ggml_from_f32(t->type, row, q, t->ne[0]);
        ok = fwrite(q, 1, rb, f) == rb;
    }
    free(row);
    free(q);
    return ok;
}

ss_err_t ss_gguf_writer_save(ss_gguf_writer_t *w, const char *path, char *err, size_t errsz)
{
    if (w->oom)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory building GGUF '%s'", path);
    FILE *f = fopen(path, "wb");
    if (!f)
        return ss_seterr(err, errsz, SS_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    ss_buf_t h = SS_BUF_INIT;
    uint32_t magic = 0x46554747u, ver = 3;
    uint64_t nt = w->nt;
    int ok = !ss_buf_append(&h, &magic, 4) && !ss_buf_append(&h, &ver, 4) && !ss_buf_append(&h, &nt, 8) &&
             !ss_buf_append(&h, &w->nkv, 8) && !ss_buf_append(&h, w->kv.data ? w->kv.data : "", w->kv.len);
    uint64_t off = 0;
    for (size_t i = 0; ok && i < w->nt; i++) {
        const wtensor_t *t = &w->t[i];
        uint64_t n = strlen(t->name), d;
        uint32_t nd = (uint32_t)t->ndim, ty = (uint32_t)t->type;
        ok = !ss_buf_append(&h, &n, 8) && !ss_buf_append(&h, t->name, n) && !ss_buf_append(&h, &nd, 4);
        for (int k = 0; ok && k < t->ndim; k++) {
            d = (uint64_t)t->ne[k];
            ok = !ss_buf_append(&h, &d, 8);
        }
        ok = ok && !ss_buf_append(&h, &ty, 4) && !ss_buf_append(&h, &off, 8);
        off += (t->nbytes + 31) / 32 * 32;
    }
    long long pos = (long long)h.len;
    ok = ok && fwrite(h.data, 1, h.len, f) == h.len && pad(f, &pos);
    for (size_t i = 0; ok && i < w->nt; i++) {
        const wtensor_t *t = &w->t[i];
        ok = t->fill ? write_fill(f, t) : fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
        pos += (long long)t->nbytes;
        ok = ok && pad(f, &pos);
    }
    ss_buf_free(&h);
    if (fclose(f) != 0)
        ok = 0;
    if (!ok)
        return ss_seterr(err, errsz, SS_ERR_IO, "writing '%s' failed: %s", path, strerror(errno));
    return SS_OK;
}
