/*
 * qpack.c — quantized weights repacked for the CPU kernels (qgemm.c), and activations
 * quantized for them.
 *
 * Panels. A quantized matrix is cut into groups of 16 rows; each row group is a run of tiles,
 * one per superblock of 256 weights of its rows (the last one shorter when the row length is
 * not a multiple of 256: legacy 32-weight types). A tile interleaves its 16 rows so that one
 * 64-byte vector holds 4 consecutive weights of each of the 16 rows ("a step"): an int8 dot
 * product instruction (vpdpbusd) then accumulates a whole group of 16 or 32 weights per row in
 * one 32-bit lane, and the group's scale is applied once per 16 rows instead of once per
 * vector. The bits stay as packed as in the file (nibbles, 2-bit fields, high-bit planes), so
 * decoding streams about as many bytes as the GGUF holds (+0-4% for the wider group scales).
 *
 * Tile layout (16 rows, ng groups of G weights; u is the unsigned value of quant.c):
 *   header     per superblock: d[16] fp16 (K-quants), and -dmin[16] fp16 (types with a min);
 *              Q8_K: d[16] f32
 *   scales     per group: legacy types d[16] fp16 (+ m[16] fp16); K-quants sc[16] (u8 or i8)
 *              (+ m[16] u8); Q2_K the file's byte sc | m << 4
 *   bits       per group: the low bits of its steps (4-bit: a 64-byte vector holds steps
 *              2t and 2t+1 as low/high nibbles; 2-bit: steps 4t..4t+3 at bit 2k; 8-bit: one
 *              step per vector), then each high-bit plane as one 64-bit mask per step
 *              (bit 4r + e = the plane's bit of row r, weight 4s + e).
 * Byte 4r + e of step s of group g is weight g*G + 4s + e of row r.
 *
 * The arithmetic every kernel follows (so results are the same for any batch size, thread
 * count or ISA, bit for bit). The activation is quantized to int8 xq (q_act below) with one
 * scale dx per block of 256 for K-quants (as llama.cpp's Q8_K) and per 32 for the legacy types
 * (as its Q8_0/Q8_1), so results stay close to llama.cpp's. With I_g = sum of u * xq over
 * group g (int32), S_g = sum of xq, A_g / B_g the group's scale and offset (quant.c):
 *   K-quants, for each superblock b: t = 0; for each group g in order
 *       zero-point types:  t = fma(A_g, float(I_g - zp * S_g), t)
 *       types with a min:  t = fma(A_g, float(I_g), t);  t = fma(B_g, float(S_g), t)
 *     then acc = fma(dx_b, t, acc);
 *   legacy types, for each group g in order, with a = A_g * dx_g rounded to float:
 *       zero-point types:  acc = fma(a, float(I_g - zp * S_g), acc)
 *       types with a min:  acc = fma(a, float(I_g), acc);  acc = fma(B_g, dx_g * float(S_g), acc).
 */
#include "llm_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const pspec_t g_specs[] = {
    /* type            G  low planes lut  zp  scale kind */
    {SS_GGML_Q4_0, 32, 4, 0, 0, 8, SK_LEGACY},
    {SS_GGML_Q4_1, 32, 4, 0, 0, -1, SK_LEGACY},
    {SS_GGML_Q5_0, 32, 4, 1, 0, 16, SK_LEGACY},
    {SS_GGML_Q5_1, 32, 4, 1, 0, -1, SK_LEGACY},
    {SS_GGML_Q8_0, 32, 8, 0, 0, 128, SK_LEGACY},
    {SS_GGML_IQ4_NL, 32, 4, 0, 1, 128, SK_LEGACY},
    {SS_GGML_Q2_K, 16, 2, 0, 0, -1, SK_Q2K},
    {SS_GGML_Q3_K, 16, 2, 1, 0, 4, SK_KSYM},
    {SS_GGML_Q4_K, 32, 4, 0, 0, -1, SK_KMIN},
    {SS_GGML_Q5_K, 32, 4, 1, 0, -1, SK_KMIN},
    {SS_GGML_Q6_K, 16, 4, 2, 0, 32, SK_KSYM},
    {SS_GGML_Q8_K, 32, 8, 0, 0, 128, SK_Q8K},
    {SS_GGML_IQ4_XS, 32, 4, 0, 1, 128, SK_KSYM},
};

const pspec_t *p_spec(int type)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(g_specs); i++)
        if (g_specs[i].type == type)
            return &g_specs[i];
    return NULL;
}

int p_hdr_bytes(const pspec_t *p)
{
    switch (p->sk) {
    case SK_KMIN: case SK_Q2K: case SK_Q8K: return 64;
    case SK_KSYM: return 32;
    default: return 0;
    }
}

int p_gscale_bytes(const pspec_t *p)
{
    switch (p->sk) {
    case SK_LEGACY: return p->zp < 0 ? 64 : 32;
    case SK_KMIN: return 32;
    case SK_KSYM: case SK_Q2K: return 16;
    default: return 0;
    }
}

int p_gbits_bytes(const pspec_t *p) { return 2 * p->lowbits * p->G + p->planes * 2 * p->G; }

size_t p_tile_bytes(const pspec_t *p, int n)
{
    int ng = n / p->G;
    return (size_t)p_hdr_bytes(p) + (size_t)ng * (p_gscale_bytes(p) + p_gbits_bytes(p));
}

/* Bytes of a row group: full tiles, then the tile of the remainder. */
static size_t group_bytes(const pspec_t *p, int cols)
{
    return (size_t)(cols / 256) * p_tile_bytes(p, 256) + (cols % 256 ? p_tile_bytes(p, cols % 256) : 0);
}

/* ---------------- raw scales of one block, per group ---------------- */

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* The group scales of one superblock-sized run of row r: writes the tile's header entries and
 * group scale entries for that row. blk: the row's first block of the run; n weights. */
static void put_scales(const pspec_t *p, const uint8_t *blk, int n, int r, uint8_t *hdr, uint8_t *gsc)
{
    const qtype_t *q = q_type(p->type);
    int ng = n / p->G, gsb = p_gscale_bytes(p);
    switch (p->sk) {
    case SK_LEGACY:
        for (int g = 0; g < ng; g++, blk += q->bytes) { /* G = 32 = one block */
            uint16_t d = rd16(blk);
            memcpy(gsc + (size_t)g * gsb + 2 * r, &d, 2);
            if (p->zp < 0) {
                uint16_t m = rd16(blk + 2);
                memcpy(gsc + (size_t)g * gsb + 32 + 2 * r, &m, 2);
            }
        }
        return;
    case SK_Q8K:
        memcpy(hdr + 4 * r, blk, 4);
        return;
    default:
        break;
    }
    /* K-quants: one block, A = d * sc (quant.c's unpack gives the same numbers; here the ints) */
    switch (p->type) {
    case SS_GGML_Q2_K: {
        uint16_t d = rd16(blk + 80), dm = (uint16_t)(rd16(blk + 82) ^ 0x8000);
        memcpy(hdr + 2 * r, &d, 2);
        memcpy(hdr + 32 + 2 * r, &dm, 2);
        for (int g = 0; g < 16; g++)
            gsc[g * gsb + r] = blk[g];
        return;
    }
    case SS_GGML_Q3_K:
    case SS_GGML_Q6_K:
    case SS_GGML_IQ4_XS: {
        uint16_t d = rd16(blk + (p->type == SS_GGML_Q3_K ? 108 : p->type == SS_GGML_Q6_K ? 208 : 0));
        memcpy(hdr + 2 * r, &d, 2);
        for (int g = 0; g < ng; g++) {
            int sc = 0;
            if (p->type == SS_GGML_Q6_K) {
                sc = (int8_t)blk[192 + g];
            } else if (p->type == SS_GGML_Q3_K) {
                int lo = (blk[96 + g % 8] >> (4 * (g / 8))) & 15, hi = (blk[96 + 8 + g % 4] >> (2 * (g / 4))) & 3;
                sc = (lo | (hi << 4)) - 32;
            } else {
                uint16_t sh = rd16(blk + 2);
                int ls = ((blk[4 + g / 2] >> (4 * (g % 2))) & 0xF) | (((sh >> (2 * g)) & 3) << 4);
                sc = ls - 32;
            }
            gsc[g * gsb + r] = (uint8_t)(int8_t)sc;
        }
        return;
    }
    default: { /* Q4_K, Q5_K */
        uint16_t d = rd16(blk), dm = (uint16_t)(rd16(blk + 2) ^ 0x8000);
        memcpy(hdr + 2 * r, &d, 2);
        memcpy(hdr + 32 + 2 * r, &dm, 2);
        const uint8_t *s = blk + 4;
        for (int g = 0; g < 8; g++) {
            int sc, m;
            if (g < 4) {
                sc = s[g] & 63;
                m = s[g + 4] & 63;
            } else {
                sc = (s[g + 4] & 0xF) | ((s[g - 4] >> 6) << 4);
                m = (s[g + 4] >> 4) | ((s[g] >> 6) << 4);
            }
            gsc[g * gsb + r] = (uint8_t)sc;
            gsc[g * gsb + 16 + r] = (uint8_t)m;
        }
        return;
    }
    }
}

/* IQ4: the level index of an unpacked value (level + 128). */
static uint8_t g_iq4_index[256];

static void iq4_index_init(void)
{
    for (int k = 0; k < 16; k++)
        g_iq4_index[ss_iq4_levels[k] + 128] = (uint8_t)k;
}

static uint8_t iq4_index_of(int v)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, iq4_index_init);
    return g_iq4_index[v & 255];
}

/* The bits of group g (G weights of each of 16 rows; u[r][...]) into its bit area. */
static void put_bits(const pspec_t *p, uint8_t u[16][256], int g, uint8_t *out)
{
    int G = p->G, steps = G / 4, lowb = 2 * p->lowbits * G;
    uint8_t v[64 * 8]; /* step s, byte 4r + e: the value (IQ4: the index) */
    for (int s = 0; s < steps; s++)
        for (int r = 0; r < 16; r++)
            for (int e = 0; e < 4; e++) {
                int x = u[r][g * G + 4 * s + e];
                v[64 * s + 4 * r + e] = p->lut ? iq4_index_of(x) : (uint8_t)x;
            }
    for (int s = 0; s < steps; s++) {
        const uint8_t *vs = v + 64 * s;
        switch (p->lowbits) {
        case 4:
            for (int k = 0; k < 64; k++)
                out[64 * (s / 2) + k] = (uint8_t)((s & 1 ? out[64 * (s / 2) + k] & 15 : 0) | (vs[k] & 15) << (4 * (s & 1)));
            break;
        case 2:
            for (int k = 0; k < 64; k++)
                out[64 * (s / 4) + k] = (uint8_t)((s & 3 ? out[64 * (s / 4) + k] : 0) | (vs[k] & 3) << (2 * (s & 3)));
            break;
        default:
            memcpy(out + 64 * s, vs, 64);
            break;
        }
        for (int pl = 0; pl < p->planes; pl++) {
            uint64_t m = 0;
            for (int k = 0; k < 64; k++)
                m |= (uint64_t)((vs[k] >> (p->lowbits + pl)) & 1) << k;
            memcpy(out + lowb + pl * 8 * steps + 8 * s, &m, 8);
        }
    }
}

/* Packs rows [r0, r0 + 16) (rows past w->rows are zero) into one row group at out. */
static void pack_group(const pspec_t *p, const wmat_t *w, int r0, uint8_t *out)
{
    const qtype_t *q = q_type(p->type);
    uint8_t u[16][256];
    for (int c0 = 0; c0 < w->cols; c0 += 256) {
        int n = SS_MIN(256, w->cols - c0), ng = n / p->G;
        size_t tb = p_tile_bytes(p, n);
        uint8_t *hdr = out, *gsc = out + p_hdr_bytes(p), *bits = gsc + (size_t)ng * p_gscale_bytes(p);
        if (r0 + 16 > w->rows) { /* rows past the matrix: zero weights and scales */
            memset(out, 0, tb);
            memset(u, 0, 16 * 256);
        }
        for (int r = 0; r < 16 && r0 + r < w->rows; r++) {
            const uint8_t *row = (const uint8_t *)w->data + (size_t)(r0 + r) * w->row_bytes;
            const uint8_t *blk = row + (size_t)(c0 / q->block) * q->bytes;
            float A[16], B[16];
            for (int k = 0; k < n; k += q->block)
                q->unpack(blk + (size_t)(k / q->block) * q->bytes, u[r] + k, A, B);
            put_scales(p, blk, n, r, hdr, gsc);
        }
        for (int g = 0; g < ng; g++)
            put_bits(p, u, g, bits + (size_t)g * p_gbits_bytes(p));
        out += tb;
    }
}

typedef struct pack_job {
    const pspec_t *p;
    const wmat_t *w;
    uint8_t *panel;
    size_t gbytes;
} pack_job_t;

static void pack_chunk(void *ctx, int g, int tid)
{
    pack_job_t *j = ctx;
    (void)tid;
    pack_group(j->p, j->w, 16 * g, j->panel + (size_t)g * j->gbytes);
}

int k_pack(wmat_t *w, int threads)
{
    const pspec_t *p = p_spec(w->type);
    if (!p || w->cols % p->G || w->panel)
        return w->panel ? 0 : -1;
    int ngroups = (w->rows + 15) / 16;
    size_t gb = group_bytes(p, w->cols), bytes = (size_t)ngroups * gb;
    /* large panels on transparent huge pages (decode streams them: fewer TLB misses) */
    size_t al = bytes >= ((size_t)4 << 20) ? ((size_t)2 << 20) : 64;
    uint8_t *panel = aligned_alloc(al, (bytes + al - 1) & ~(al - 1));
    if (!panel)
        return -1;
    if (al > 64)
        madvise(panel, (bytes + al - 1) & ~(al - 1), MADV_HUGEPAGE);
    pack_job_t j = {p, w, panel, gb};
    pool_run(threads, ngroups, pack_chunk, &j);
    w->panel = panel;
    w->group_bytes = gb;
    return 0;
}

typedef struct copy_job {
    const uint8_t *src;
    uint8_t *dst;
    size_t bytes, chunk;
} copy_job_t;

static void copy_chunk(void *ctx, int c, int tid)
{
    copy_job_t *j = ctx;
    (void)tid;
    size_t o = (size_t)c * j->chunk;
    memcpy(j->dst + o, j->src + o, j->bytes - o < j->chunk ? j->bytes - o : j->chunk);
}

int k_copy_float(wmat_t *w, int threads)
{
    if (w->panel || (w->type != SS_GGML_F32 && w->type != SS_GGML_F16 && w->type != SS_GGML_BF16))
        return 0;
    size_t bytes = (size_t)w->rows * w->row_bytes, al = (size_t)2 << 20;
    if (bytes < ((size_t)4 << 20))
        return 0;
    uint8_t *copy = aligned_alloc(al, (bytes + al - 1) & ~(al - 1));
    if (!copy)
        return -1;
    madvise(copy, (bytes + al - 1) & ~(al - 1), MADV_HUGEPAGE);
    copy_job_t j = {w->data, copy, bytes, (size_t)16 << 20};
    pool_run(threads, (int)((bytes + j.chunk - 1) / j.chunk), copy_chunk, &j);
    w->panel = copy;
    w->data = copy;
    return 0;
}

void k_unpack_free(wmat_t *w)
{
    free(w->panel);
    w->panel = NULL;
    w->group_bytes = 0;
}

/* ---------------- activations ---------------- */

void q_act_row(const float *x, int cols, int blk, int8_t *q, float *dx, int32_t *ns16, int32_t *ns32, float *s16,
               float *s32)
{
    for (int c0 = 0, b = 0; c0 < cols; c0 += blk, b++) {
        int n = SS_MIN(blk, cols - c0);
        float amax = 0;
        for (int i = 0; i < n; i++) {
            float v = x[c0 + i] < 0 ? -x[c0 + i] : x[c0 + i];
            amax = v > amax ? v : amax;
        }
        float d = amax / 127.f, inv = d != 0 ? 1.f / d : 0.f;
        dx[b] = d;
        for (int i = 0; i < n; i++)
            q[c0 + i] = (int8_t)(int)rintf(x[c0 + i] * inv); /* |x * inv| <= 127 */
    }
    q_act_sums(q, cols, blk, dx, ns16, ns32, s16, s32);
}

void q_act_sums(const int8_t *q, int cols, int blk, const float *dx, int32_t *ns16, int32_t *ns32, float *s16,
                float *s32)
{
    for (int g = 0; g < cols / 16; g++) {
        int s = 0;
        for (int i = 0; i < 16; i++)
            s += q[16 * g + i];
        ns16[g] = -s;
        s16[g] = (float)s;
    }
    for (int g = 0; g < cols / 32; g++) {
        ns32[g] = ns16[2 * g] + ns16[2 * g + 1];
        s32[g] = blk == 32 ? dx[g] * (float)-ns32[g] : (float)-ns32[g];
    }
}

typedef struct qact_job {
    qact_t *a;
    const float *x;
    size_t ldx;
    int per;
} qact_job_t;

static void qact_rows(void *ctx, int t, int tid)
{
    qact_job_t *j = ctx;
    qact_t *a = j->a;
    int cols = a->cols, nsb = a->nsb;
    (void)tid;
    for (int b = t * j->per; b < SS_MIN(a->nb, (t + 1) * j->per); b++)
        q_act_row_isa(j->x + (size_t)b * j->ldx, cols, a->blk, a->q + (size_t)b * cols, a->dx + (size_t)b * nsb,
                      a->ns16 + (size_t)b * (cols / 16), a->ns32 + (size_t)b * (cols / 32),
                      a->s16 + (size_t)b * (cols / 16), a->s32 + (size_t)b * (cols / 32));
}

ss_err_t q_act(qact_t *a, const float *x, size_t ldx, int nb, int cols, int blk, int threads)
{
    size_t nsb = (size_t)(cols + blk - 1) / blk;
    size_t need = (size_t)nb * ((size_t)cols + nsb * 4 + (size_t)cols / 16 * 8 + (size_t)cols / 32 * 8) + 256;
    if (need > a->cap) {
        free(a->buf);
        a->buf = aligned_alloc(64, (need + 63) & ~(size_t)63);
        a->cap = a->buf ? need : 0;
        if (!a->buf)
            return SS_ERR_NOMEM;
    }
    a->nb = nb;
    a->cols = cols;
    a->blk = blk;
    a->nsb = (int)nsb;
    uint8_t *p = a->buf;
    a->q = (int8_t *)p;
    p += (size_t)nb * cols;
    p = (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
    a->dx = (float *)p;
    p += (size_t)nb * nsb * 4;
    a->ns16 = (int32_t *)p;
    p += (size_t)nb * (cols / 16) * 4;
    a->s16 = (float *)p;
    p += (size_t)nb * (cols / 16) * 4;
    a->ns32 = (int32_t *)p;
    p += (size_t)nb * (cols / 32) * 4;
    a->s32 = (float *)p;
    qact_job_t j = {a, x, ldx, 16}; /* rows in chunks of 16, shared by the threads for large batches */
    pool_run(nb >= 64 ? threads : 1, (nb + j.per - 1) / j.per, qact_rows, &j);
    return SS_OK;
}

void q_act_free(qact_t *a)
{
    free(a->buf);
    memset(a, 0, sizeof *a);
}

/* ---------------- the reference kernel (scalar, the arithmetic defined above) ---------------- */

/* Group scale and offset of row r (A, B) from a tile's header and group scales. */
void p_group_ab(const pspec_t *p, const uint8_t *hdr, const uint8_t *gsc, int r, float *A, float *B)
{
    *B = 0;
    switch (p->sk) {
    case SK_LEGACY:
        *A = ss_fp16_to_f32(rd16(gsc + 2 * r));
        if (p->zp < 0)
            *B = ss_fp16_to_f32(rd16(gsc + 32 + 2 * r));
        return;
    case SK_Q8K:
        memcpy(A, hdr + 4 * r, 4);
        return;
    case SK_KSYM:
        *A = ss_fp16_to_f32(rd16(hdr + 2 * r)) * (float)(int8_t)gsc[r];
        return;
    case SK_Q2K:
        *A = ss_fp16_to_f32(rd16(hdr + 2 * r)) * (float)(gsc[r] & 15);
        *B = ss_fp16_to_f32(rd16(hdr + 32 + 2 * r)) * (float)(gsc[r] >> 4);
        return;
    default: /* KMIN */
        *A = ss_fp16_to_f32(rd16(hdr + 2 * r)) * (float)gsc[r];
        *B = ss_fp16_to_f32(rd16(hdr + 32 + 2 * r)) * (float)gsc[16 + r];
        return;
    }
}

/* Weight value u of row r, weight i of group bits gb. */
int p_u(const pspec_t *p, const uint8_t *gb, int r, int i)
{
    int s = i / 4, byte = 4 * r + i % 4, steps = p->G / 4, lowb = 2 * p->lowbits * p->G, v;
    switch (p->lowbits) {
    case 4: v = (gb[64 * (s / 2) + byte] >> (4 * (s & 1))) & 15; break;
    case 2: v = (gb[64 * (s / 4) + byte] >> (2 * (s & 3))) & 3; break;
    default: v = gb[64 * s + byte]; break;
    }
    for (int pl = 0; pl < p->planes; pl++)
        v |= ((gb[lowb + pl * 8 * steps + 8 * s + byte / 8] >> (byte % 8)) & 1) << (p->lowbits + pl);
    if (p->lut)
        v = ss_iq4_levels[v] + 128;
    return v;
}

void qgemm_scalar(const pspec_t *p, const uint8_t *grp, int cols, const qact_t *a, int b0, int nb, float *out,
                  size_t ldo, int nrows)
{
    int G = p->G, gsb = p_gscale_bytes(p), gbb = p_gbits_bytes(p), legacy = p->sk == SK_LEGACY;
    for (int b = b0; b < b0 + nb; b++) {
        const int8_t *xq = a->q + (size_t)b * a->cols;
        const float *dx = a->dx + (size_t)b * a->nsb;
        const int32_t *ns = G == 16 ? a->ns16 + (size_t)b * (a->cols / 16) : a->ns32 + (size_t)b * (a->cols / 32);
        const float *sf = G == 16 ? a->s16 + (size_t)b * (a->cols / 16) : a->s32 + (size_t)b * (a->cols / 32);
        for (int r = 0; r < nrows; r++) {
            float acc = 0;
            const uint8_t *tile = grp;
            for (int c0 = 0; c0 < cols; c0 += 256) {
                int n = SS_MIN(256, cols - c0), ng = n / G;
                const uint8_t *hdr = tile, *gsc = tile + p_hdr_bytes(p), *bits = gsc + (size_t)ng * gsb;
                float t = 0;
                for (int g = 0; g < ng; g++) {
                    int I = 0, gi = (c0 + g * G) / G;
                    for (int i = 0; i < G; i++)
                        I += p_u(p, bits + (size_t)g * gbb, r, i) * xq[c0 + g * G + i];
                    float A, B;
                    p_group_ab(p, hdr, gsc + (size_t)g * gsb, r, &A, &B);
                    float *dst = legacy ? &acc : &t, ad = legacy ? A * dx[gi] : A;
                    if (p->zp >= 0) {
                        *dst = fmaf(ad, (float)(I + p->zp * ns[gi]), *dst);
                    } else {
                        *dst = fmaf(ad, (float)I, *dst);
                        *dst = fmaf(B, sf[gi], *dst);
                    }
                }
                if (!legacy)
                    acc = fmaf(dx[c0 / 256], t, acc);
                tile += p_tile_bytes(p, n);
            }
            out[(size_t)(b - b0) * ldo + r] = acc;
        }
    }
}
